"""Rule mnist_train: train one variant (resuming from its checkpoint), write its tables and model."""

import sys
from pathlib import Path

import torch

from pipeline.data import load_mnist
from pipeline.errors import run_script
from pipeline.mnist_train import finish, train, write_outputs


def main(smk):
    torch.set_num_threads(smk.threads)
    data = load_mnist(Path(smk.input[0]).parent)
    terminal = sys.__stderr__ if sys.__stderr__ is not None and sys.__stderr__.isatty() else None
    outcome = train(
        smk.params.mnist, smk.wildcards.variant, data, smk.params.checkpoint_dir, sys.stderr, terminal
    )
    write_outputs(outcome, smk.params.mnist, smk.output)
    finish(smk.params.checkpoint_dir)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
