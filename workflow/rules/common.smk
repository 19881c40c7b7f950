# Shared by the rule files: params slices, figure settings and captions, the final targets.
import os
from pathlib import Path

from pipeline.config import canonical, numbers

# Scripts import the library from the repository root, installed or not (conda, clusters).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)
ENV = "../envs/pipeline.yaml"
CAPTIONS = Path(workflow.basedir) / "workflow" / "report"

# Every figure is written as png (the reports embed it) and in each of figures.formats.
FIGURE_FORMATS = [f for f in dict.fromkeys(config["figures"]["formats"]) if f != "png"]


def figure_settings(study):
    """A figure rule's settings: the shared figure keys merged with figures.<study>, so that
    changing another study's figure settings re-draws none of this study's figures."""
    shared = {k: v for k, v in config["figures"].items() if not isinstance(v, dict)}
    return canonical({**shared, **config["figures"][study]})


def caption(study, figure):
    """The caption of a figure: workflow/report/<study>_<figure>.rst (reStructuredText)."""
    return (CAPTIONS / f"{study}_{figure}.rst").read_text()


def figure_files(pngs):
    """Every file of the given figures: the png and its other formats."""
    return [f"{png[:-4]}.{fmt}" for png in pngs for fmt in ("png", *FIGURE_FORMATS)]


def study_outputs():
    """{study: {"tables": [...], "figures": [png, ...]}} for every enabled study."""
    outputs = {
        "stability": stability_outputs(),
        "bias1d": bias1d_outputs(),
        "mnist": mnist_outputs(),
        "stepsize": stepsize_outputs(),
    }
    return {study: out for study, out in outputs.items() if out["tables"]}


def final_targets(report=True):
    """What `snakemake` builds: the data, every enabled study's tables and figures, the report."""
    targets = list(rules.mnist_data.output)
    for out in study_outputs().values():
        targets += out["tables"] + figure_files(out["figures"])
    if report and config["report"]["enabled"]:
        targets += [rules.report_claims.output[0], rules.report_html.output[0]]
    return targets
