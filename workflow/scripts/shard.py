"""Rule <study>_shard (and every other shard rule): one training job of a study.

Calls the study's `run_shard(cfg, shard)` (`pipeline.shard.Shard`: wildcards, data inputs,
artifact paths, scratch folder, log), writes its tables, then removes the scratch folder.
"""

import sys
from importlib import import_module
from pathlib import Path

import torch

from pipeline import studies
from pipeline.errors import run_script
from pipeline.shard import Clock, Shard
from pipeline.tables import write_tables


def main(smk):
    study, kind = studies.kind(smk.rule)
    torch.set_num_threads(smk.threads)
    terminal = sys.__stderr__ if sys.__stderr__ is not None and sys.__stderr__.isatty() else None
    shard = Shard(
        wildcards={
            k: int(v) if study.wildcards.get(k) == studies.DIGITS else v for k, v in smk.wildcards.items()
        },
        inputs={name: [Path(p) for p in smk.input[name]] for name in study.inputs},  # lists
        artifacts={name: Path(smk.output[name]) for name in study.artifacts},
        scratch=Path(smk.params.scratch),
        log=Clock(sys.stderr),
        progress=terminal,
    )
    shard.log(f"{smk.rule} {dict(shard.wildcards)}: {smk.threads} thread(s)")
    tables = import_module(study.module("study")).run_shard(smk.params.cfg, shard)
    write_tables(tables, {t: smk.output[t] for t in kind.tables})
    shard.log(f"wrote {', '.join(kind.tables)}")
    shard.finish()


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
