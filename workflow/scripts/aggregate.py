"""Rule <study>_aggregate: concatenate the shards' tables, one table each, plus the summary."""

from importlib import import_module
from pathlib import Path

from pipeline.errors import run_script
from pipeline.tables import concat_tables, write_tables


def main(smk):
    study = import_module(f"pipeline.{smk.params.study}.study")
    outputs = dict(smk.output.items())
    tables = {
        name: concat_tables(p for p in smk.input if Path(p).stem == name)
        for name in outputs
        if name != "summary"
    }
    tables["summary"] = study.summary(tables)
    write_tables(tables, outputs)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
