"""Rule bias1d_aggregate: concatenate the shards' tables into one table each, plus a summary."""

import pandas as pd

from pipeline.bias1d_study import summary
from pipeline.errors import run_script


def main(smk):
    for name in smk.params.tables:
        shards = [path for path in smk.input if path.endswith(f"/{name}.parquet")]
        pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True).to_parquet(
            smk.output[name], index=False
        )
    summary(pd.read_parquet(smk.output["runs"])).to_csv(smk.output["summary"], index=False)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
