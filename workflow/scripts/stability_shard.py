"""Rule stability_shard: run one shard (one study x one depth) of a stability sweep."""

import torch

from pipeline.errors import run_script
from pipeline.stability_studies import run_shard


def main(smk):
    torch.set_num_threads(smk.threads)
    runs, curves = run_shard(
        smk.wildcards.study, int(smk.wildcards.depth), smk.params.engine, smk.params.block
    )
    runs.to_parquet(smk.output.runs, index=False)
    curves.to_parquet(smk.output.curves, index=False)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
