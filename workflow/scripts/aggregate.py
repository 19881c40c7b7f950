"""Rule <study>_aggregate: concatenate the shards' tables, then the study's derived tables.

Every output named like a shard table is the concatenation of that table over the shards (in
the order of the inputs); the other outputs (summary.csv, ...) are `study.summary(tables)`.
"""

from importlib import import_module
from pathlib import Path

from pipeline.errors import run_script
from pipeline.tables import concat_tables, write_tables


def main(smk):
    study = import_module(f"pipeline.{smk.params.study}.study")
    outputs = dict(smk.output.items())
    shard_tables = {Path(p).stem for p in smk.input}
    tables = {name: concat_tables(p for p in smk.input if Path(p).stem == name) for name in shard_tables}
    tables.update(study.summary(tables))
    write_tables(tables, outputs)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
