# Shared by the rule files (params slices, figure settings and captions, the final targets).
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
    """A figure rule's settings: the shared figure keys merged with figures.<study> (if any),
    so that changing another study's figure settings re-draws none of this study's figures.
    """
    shared = {k: v for k, v in config["figures"].items() if not isinstance(v, dict)}
    return canonical({**shared, **config["figures"].get(study, {})})


def caption(study, figure):
    """The caption of a figure: workflow/report/<study>_<figure>.rst (reStructuredText)."""
    return (CAPTIONS / f"{study}_{figure}.rst").read_text()


def figure_files(pngs):
    """Every file of the given figures: the png and its other formats."""
    return [f"{png[:-4]}.{fmt}" for png in pngs for fmt in ("png", *FIGURE_FORMATS)]


# ------------------------------------------------------------------ final outputs ----------
# Each study's final outputs: its aggregated tables (every output of its aggregate rule) and
# its figures (png; figure_files adds the other formats), empty when it is switched off.


def stability_outputs():
    return {
        "tables": expand(
            rules.stability_aggregate.output, part=STABILITY_PARTS, allow_missing=True
        ),
        "figures": [
            f"results/stability/figures/{name}.png"
            for name, (part, _) in STABILITY_FIGURES.items()
            if part in STABILITY_PARTS
        ],
    }


def bias1d_outputs():
    if not BIAS1D["enabled"]:
        return {"tables": [], "figures": []}
    return {
        "tables": list(rules.bias1d_aggregate.output),
        "figures": [f"results/bias1d/figures/{name}.png" for name in BIAS1D_FIGURES],
    }


def mnist_shards(variant):
    """The shard folders of one variant: every part that runs it, every seed of that part."""
    return [
        MNIST_SHARD.format(variant=variant, part=name, seed=seed)
        for name, part in MNIST_PARTS.items()
        if variant in part["variants"]
        for seed in part["seeds"]
    ]


def mnist_outputs():
    return {
        "tables": expand(
            rules.mnist_aggregate.output, variant=MNIST_VARIANTS, allow_missing=True
        ),
        "figures": (
            [f"results/mnist/figures/{name}.png" for name in MNIST_FIGURES]
            if MNIST_VARIANTS
            else []
        ),
    }


def stepsize_outputs():
    problems = {problem for problem, _ in STEPSIZE_SHARDS.values()}
    return {
        "tables": list(rules.stepsize_aggregate.output) if problems else [],
        "figures": [
            f"results/stepsize/figures/{name}.png"
            for name in STEPSIZE_FIGURES
            # the basin maps need the basin shards, the other figures a problem's runs
            if ("basin" in problems if name == "basins" else bool(problems - {"basin"}))
        ],
    }


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
        targets += [*rules.report_claims.output, rules.report_html.output[0]]
        targets += figure_files(report_figures()["report"])
    return targets


# ------------------------------------------------------------------ the report -------------


def claim_inputs(wildcards):
    """The aggregated tables the claims read, by name, for the enabled studies."""
    tables = {
        part: expand(rules.stability_aggregate.output.runs, part=part)[0]
        for part in STABILITY_PARTS
    }
    if BIAS1D["enabled"]:
        tables["bias1d"] = rules.bias1d_aggregate.output.runs
        tables["bias1d_snapshots"] = rules.bias1d_aggregate.output.snapshots
        tables["bias1d_progress"] = rules.bias1d_aggregate.output.progress
        tables["bias1d_timing"] = rules.bias1d_aggregate.output.timing
    if MNIST_VARIANTS:
        tables["mnist"] = expand(
            rules.mnist_aggregate.output.metrics, variant=MNIST_VARIANTS
        )
    if STEPSIZE_SHARDS:
        tables["stepsize"] = rules.stepsize_aggregate.output.runs
    return tables


def report_figures():
    """{section: [png, ...]} of the report page: every study's figures, then the claims'."""
    figures = {study: out["figures"] for study, out in study_outputs().items()}
    figures["report"] = [
        f"results/report/figures/{name}.png" for name in REPORT_FIGURES
    ]
    return figures
