"""Rule mnist_data: write the four verified MNIST idx files."""

import sys
from pathlib import Path

from pipeline.data import fetch_mnist
from pipeline.errors import run_script


def main(smk):
    raw_dir = Path(smk.output[0]).parent
    paths = fetch_mnist(
        raw_dir,
        md5sums=smk.params.md5,
        mnist_dir=smk.params.mnist_dir,
        mirrors=smk.params.mirrors,
        timeout_s=smk.params.timeout_s,
    )
    for path in paths:
        print(f"verified {path}", file=sys.stderr)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
