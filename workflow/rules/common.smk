# Shared by the rule files. Everything comes from the registry (pipeline/studies.py) and the
# config; helpers for params, logs, captions and the final targets.
import os
from pathlib import Path

from pipeline import studies
from pipeline.code import digest
from pipeline.config import canonical

# Scripts import the library from the repository root, installed or not (conda, clusters).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)
ENV = "../envs/pipeline.yaml"
SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
CAPTIONS = Path(workflow.basedir) / "workflow" / "report"

# Every figure is written as png (the reports embed it) and in each of figures.formats.
FIGURE_FORMATS = [f for f in dict.fromkeys(config["figures"]["formats"]) if f != "png"]


def code(modules, script):
    """A digest of the code a job runs (pipeline/code.py), its script and library modules."""
    return digest(modules, [SCRIPTS / script])


def constraints(study, *patterns):
    """The regex of each wildcard the given path patterns use."""
    return {
        k: v
        for k, v in study.wildcards.items()
        if any(f"{{{k}}}" in p for p in patterns)
    }


def job_log(study, name, pattern=""):
    """results/logs/<study>/[<group>/]<name>[_<pattern>].log and the benchmark's
    results/benchmarks/<same>.tsv."""
    group = f"{{{study.group}}}/" if study.group and name != "figure" else ""
    stem = f"{study.name}/{group}{name}{f'_{pattern}' if pattern else ''}"
    return {
        "log": f"results/logs/{stem}.log",
        "benchmark": f"results/benchmarks/{stem}.tsv",
    }


def shard_config(kind):
    """The params of a shard rule: the config slice its numbers depend on."""
    return lambda wildcards: kind.config(config, dict(wildcards.items()))


def aggregate_inputs(study):
    return lambda wildcards: study.aggregate_inputs(
        config, wildcards[study.group] if study.group else ""
    )


def figure_inputs(study):
    return lambda wildcards: study.figure_inputs(config, wildcards.figure)


def cluster_resources(study):
    """runtime and mem_mb of a study's shards on a cluster, and its GPUs (config <study>.gpu)."""
    gpu = {"gpu": config[study.name]["gpu"]} if study.gpu else {}
    return {**study.resources, **gpu}


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


def figure_formats(study):
    return expand(
        study.figure_output().replace(".png", ".{fmt}"),
        fmt=FIGURE_FORMATS,
        allow_missing=True,
    )


# ------------------------------------------------------------------ final outputs ----------


def study_outputs():
    """{study: {"tables": [...], "figures": [png, ...]}} for every enabled study."""
    outputs = {s.name: s.outputs(config) for s in studies.STUDIES}
    return {name: out for name, out in outputs.items() if out["tables"]}


def final_targets(report=True):
    """What `snakemake` builds: the data the enabled studies read, every enabled study's tables
    and figures, the report."""
    data = [name for s in studies.STUDIES if s.enabled(config) for name in s.inputs]
    targets = [path for name in dict.fromkeys(data) for path in studies.DATA[name]]
    for out in study_outputs().values():
        targets += out["tables"] + figure_files(out["figures"])
    if report and config["report"]["enabled"]:
        targets += [*rules.report_claims.output, rules.report_html.output[0]]
        targets += figure_files(report_figures()["report"])
    return targets


# ------------------------------------------------------------------ the report -------------


def claim_inputs(wildcards):
    """The aggregated tables the claims read, by key (`<study>/<table key>`)."""
    return {k: v for s in studies.STUDIES for k, v in s.claim_inputs(config).items()}


def report_figures():
    """{section: [png, ...]} of the report page: every study's figures, then the claims'."""
    figures = {study: out["figures"] for study, out in study_outputs().items()}
    figures["report"] = [
        f"results/report/figures/{name}.png" for name in studies.REPORT_FIGURES
    ]
    return figures


def benchmark_files(figures=True):
    """The benchmark files of every job of this config: shards and aggregates (and figures)."""
    files = []
    for study in studies.STUDIES:
        for kind in study.kinds:
            path = job_log(study, "shard", kind.pattern)["benchmark"]
            files += [path.format(**job) for job in kind.jobs(config)]
        path = job_log(study, "aggregate")["benchmark"]
        files += [
            path.format(**{study.group: g} if study.group else {})
            for g in study.active_groups(config)
        ]
        if figures:
            path = job_log(study, "figure", "{figure}")["benchmark"]
            files += [path.format(figure=f) for f in study.figures_run(config)]
    return files


def report_replaced_resources():
    """A resource the command line or a profile sets for a shard rule replaces the one the rule
    derives from the registry and the config (e.g. mnist.gpu): say so, never silently.
    """
    for study in studies.STUDIES:
        for kind in study.kinds:
            given = workflow.resource_settings.overwrite_resources.get(kind.rule, {})
            for name, value in cluster_resources(study).items():
                setting = getattr(given.get(name), "value", given.get(name))
                if name in given and setting != value:
                    key = (
                        f"{study.name}.{name}"
                        if name == "gpu"
                        else f"the registry's {name}"
                    )
                    logger.warning(
                        f"set-resources {kind.rule}:{name}={setting} (profile or command line) "
                        f"replaces {value} from {key}."
                    )
