"""Rule bias1d_shard: every run of one depth (all targets, intervals, seeds) as one batch."""

import torch

from pipeline.bias1d.study import run_shard
from pipeline.errors import run_script
from pipeline.tables import write_tables


def main(smk):
    torch.set_num_threads(smk.threads)
    tables = run_shard(smk.params.cfg, int(smk.wildcards.depth))
    write_tables(tables, dict(smk.output.items()))


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
