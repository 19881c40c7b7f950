"""Rule mnist_aggregate: one metrics and one drift table over all variants, and a summary."""

import pandas as pd

from pipeline.errors import run_script
from pipeline.mnist import summary


def main(smk):
    metrics = pd.concat([pd.read_parquet(p) for p in smk.input.metrics], ignore_index=True)
    drift = pd.concat([pd.read_parquet(p) for p in smk.input.drift], ignore_index=True)
    lipschitz = pd.concat([pd.read_parquet(p) for p in smk.input.lipschitz], ignore_index=True)
    metrics.to_parquet(smk.output.metrics, index=False)
    drift.to_parquet(smk.output.drift, index=False)
    summary(metrics, drift, lipschitz).to_csv(smk.output.summary, index=False)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
