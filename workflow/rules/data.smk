# MNIST: four uncompressed idx files, verified against their MD5, in the layout that
# torchvision.datasets.MNIST(root="results/data", download=False) reads. Where they come from
# (mnist_dir, data.mirrors, data.timeout_s) changes no byte, so it is read from the config by
# the script rather than passed as params; nor is its code: every file is checked against its
# MD5, so a change of the fetching code cannot change a byte of it.
from snakemake.exceptions import WorkflowError

if config["mnist_dir"] and not Path(config["mnist_dir"]).is_dir():
    raise WorkflowError(
        f"The MNIST folder '{config['mnist_dir']}' (config key mnist_dir) does not exist; "
        "set mnist_dir to a folder holding the four MNIST files (snakemake --config mnist_dir=PATH)."
    )


rule mnist_data:
    output:
        studies.DATA["mnist"],
    log:
        "results/logs/data/mnist_data.log",
    conda:
        ENV
    params:
        md5=canonical(config["data"]["md5"]),
    script:
        "../scripts/fetch_mnist.py"
