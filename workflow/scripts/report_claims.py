"""Rule report_claims: a verdict for every claim (docs/claims.md) -> claims.csv (with the run's
provenance and job times in extra columns) and settings.parquet (the verdict at every setting
of each claim's robustness grid)."""

import os
import sys
from pathlib import Path

import pandas as pd

from pipeline.claims import check_claims
from pipeline.errors import run_script
from pipeline.report import column, provenance, read_benchmarks, run_times
from pipeline.tables import concat_tables


def main(smk):
    outputs = {"claims", "settings"}
    tables = {
        name: concat_tables([paths] if isinstance(paths, str) else paths)
        for name, paths in smk.input.items()
        if name not in outputs
    }
    claims, settings = check_claims(tables, smk.params.thresholds)
    metrics = tables.get("mnist/metrics")
    devices = metrics["device"].astype(str).unique() if metrics is not None and "device" in metrics else []
    config_files = [f for f in os.environ.get("PIPELINE_CONFIG_FILES", "").split(os.pathsep) if f]
    repo = Path(smk.scriptdir).parents[1]
    prov = provenance(repo, config_files, os.environ.get("PIPELINE_CONFIG_DIGEST", "unknown"), devices)
    times = run_times(read_benchmarks(smk.params.benchmarks))
    claims = claims.assign(**{column(k): v for k, v in prov.items()}, **times)
    Path(smk.output.claims).parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(smk.output.claims, index=False)
    settings.to_parquet(smk.output.settings, index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        shown = claims[["claim_id", "part", "verdict", "estimate", "ci_low", "ci_high", "threshold"]]
        print(shown.to_string(index=False), file=sys.stderr)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
