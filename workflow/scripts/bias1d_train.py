"""Rule bias1d_train: train every run of one depth (all targets, intervals, seeds) as one batch."""

from pathlib import Path

import torch

from pipeline.bias1d_study import run_shard
from pipeline.errors import run_script


def main(smk):
    torch.set_num_threads(smk.params.cfg["threads"])
    tables = run_shard(smk.params.cfg, int(smk.wildcards.depth))
    for name, path in smk.output.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tables[name].to_parquet(path, index=False)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
