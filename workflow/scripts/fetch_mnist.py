"""Rule mnist_data: write the four verified MNIST idx files.

Where the files come from (mnist_dir, data.mirrors, data.timeout_s) changes no byte of them,
so it is read from the config rather than from params (changing it re-runs nothing).
"""

import sys
from pathlib import Path

from pipeline.data import fetch_mnist
from pipeline.errors import run_script


def main(smk):
    paths = fetch_mnist(
        Path(smk.output[0]).parent,
        md5sums=smk.params.md5,
        mnist_dir=smk.config["mnist_dir"],
        mirrors=smk.config["data"]["mirrors"],
        timeout_s=smk.config["data"]["timeout_s"],
    )
    for path in paths:
        print(f"verified {path}", file=sys.stderr)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
