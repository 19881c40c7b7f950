# MNIST: four uncompressed idx files, verified against their MD5, in the layout that
# torchvision.datasets.MNIST(root="results/data", download=False) reads.
MNIST_RAW = "results/data/MNIST/raw"
MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


rule mnist_data:
    output:
        expand(f"{MNIST_RAW}/{{name}}", name=MNIST_FILES),
    log:
        "results/logs/data/mnist_data.log",
    conda:
        ENV
    params:
        mnist_dir=(
            os.path.abspath(config["mnist_dir"]) if config["mnist_dir"] else None
        ),
        mirrors=config["data"]["mirrors"],
        timeout_s=config["data"]["timeout_s"],
        md5=config["data"]["md5"],
    script:
        "../scripts/fetch_mnist.py"


TARGETS.extend(rules.mnist_data.output)
