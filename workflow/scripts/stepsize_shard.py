"""Rule stepsize_shard: one problem of the step-size study at one depth, as one batch."""

import torch

from pipeline.errors import run_script
from pipeline.stepsize.study import run_shard
from pipeline.tables import write_tables


def main(smk):
    torch.set_num_threads(smk.threads)
    tables = run_shard(smk.params.cfg, smk.wildcards.problem, int(smk.wildcards.depth))
    write_tables(tables, dict(smk.output.items()))


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
