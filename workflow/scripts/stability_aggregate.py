"""Rule stability_aggregate: concatenate a study's shards into runs.parquet and curves.parquet."""

from pipeline.errors import run_script
from pipeline.stability_studies import concat_shards


def main(smk):
    runs = concat_shards([p for p in smk.input if p.endswith("_runs.parquet")])
    curves = concat_shards([p for p in smk.input if p.endswith("_curves.parquet")])
    runs.to_parquet(smk.output.runs, index=False)
    curves.to_parquet(smk.output.curves, index=False)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
