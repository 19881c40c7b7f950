"""Rule mnist_shard: train one variant of one part from one seed (resuming from its checkpoint)."""

import sys
from pathlib import Path

import torch

from pipeline.errors import run_script
from pipeline.mnist.study import run_shard
from pipeline.mnist.train import finish
from pipeline.tables import write_tables


def main(smk):
    torch.set_num_threads(smk.threads)
    terminal = sys.__stderr__ if sys.__stderr__ is not None and sys.__stderr__.isatty() else None
    tables = run_shard(
        smk.params.cfg,
        smk.wildcards.variant,
        smk.wildcards.part,
        int(smk.wildcards.seed),
        data_dir=Path(smk.input[0]).parent,
        checkpoint_dir=smk.params.checkpoint_dir,
        progress=terminal,
    )
    write_tables(tables, dict(smk.output.items()))
    finish(smk.params.checkpoint_dir)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
