# MNIST: four uncompressed idx files, verified against their MD5, in the layout that
# torchvision.datasets.MNIST(root="results/data", download=False) reads. Where they come from
# (mnist_dir, data.mirrors, data.timeout_s) changes no byte, so it is read from the config by
# the script rather than passed as params.
from snakemake.exceptions import WorkflowError

MNIST_RAW = "results/data/MNIST/raw"
MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

if config["mnist_dir"] and not Path(config["mnist_dir"]).is_dir():
    raise WorkflowError(
        f"The MNIST folder '{config['mnist_dir']}' (config key mnist_dir) does not exist; "
        "set mnist_dir to a folder holding the four MNIST files (snakemake --config mnist_dir=PATH)."
    )


rule mnist_data:
    output:
        expand(f"{MNIST_RAW}/{{name}}", name=MNIST_FILES),
    log:
        "results/logs/data/mnist_data.log",
    conda:
        ENV
    params:
        md5=canonical(config["data"]["md5"]),
    script:
        "../scripts/fetch_mnist.py"
