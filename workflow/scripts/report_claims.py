"""Rule report_claims: a verdict for every claim (docs/claims.md) -> claims.csv, claims.md (the
same as a Markdown table, one row per claim), robustness.parquet."""

import sys
from pathlib import Path

import pandas as pd

from pipeline.claims import check_claims, claims_markdown
from pipeline.errors import run_script
from pipeline.tables import concat_tables


def main(smk):
    outputs = {"claims", "markdown", "robustness"}
    tables = {
        name: concat_tables([paths] if isinstance(paths, str) else paths)
        for name, paths in smk.input.items()
        if name not in outputs
    }
    claims, robustness = check_claims(tables, smk.params.thresholds)
    Path(smk.output.claims).parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(smk.output.claims, index=False)
    Path(smk.output.markdown).write_text(claims_markdown(claims))
    robustness.to_parquet(smk.output.robustness, index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(claims.drop(columns=["claim", "evidence"]).to_string(index=False), file=sys.stderr)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
