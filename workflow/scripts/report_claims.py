"""Rule report_claims: a verdict for every claim (docs/claims.md) -> claims.csv."""

import sys
from pathlib import Path

from pipeline.claims import TABLES, check_claims, read_table
from pipeline.errors import run_script


def main(smk):
    paths = dict(smk.input.items())
    claims = check_claims({name: read_table(paths.get(name)) for name in TABLES}, smk.params.thresholds)
    Path(smk.output[0]).parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(smk.output[0], index=False)
    print(claims.to_string(index=False), file=sys.stderr)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
