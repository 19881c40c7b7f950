"""Rule <study>_aggregate: concatenate the shards' tables, then the study's derived tables.

Every output named like a shard table is the concatenation of that table over the shards (in
the order of the inputs; empty where no shard of this config writes it); the other outputs
(summary.csv, ...) are `pipeline.<study>.summary.summary(tables)`.
"""

from importlib import import_module
from pathlib import Path

import pandas as pd

from pipeline import studies
from pipeline.errors import run_script
from pipeline.tables import concat_tables, write_tables


def main(smk):
    study = studies.get(smk.params.study)
    tables = {}
    for name in study.tables:
        paths = [p for p in smk.input if Path(p).stem == name]
        tables[name] = concat_tables(paths) if paths else pd.DataFrame()
    tables.update(import_module(study.module("summary")).summary(tables))
    write_tables(tables, dict(smk.output.items()))


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
