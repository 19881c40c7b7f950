# Shared helpers for the rules. Every study's .smk appends its final outputs to TARGETS.
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Scripts import the library from the repository root, installed or not (conda, clusters).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)
ENV = "../envs/pipeline.yaml"

# Final outputs of every enabled study; `rule all` requests them.
TARGETS = []
# Figures per study, {study: [png path, ...]}, each drawn by a figure rule from aggregated
# tables only, with a caption in workflow/report/<study>_<name>.rst; the report embeds them.
FIGURES = {}

if config["mnist_dir"] and not Path(config["mnist_dir"]).is_dir():
    raise WorkflowError(
        f"The MNIST folder '{config['mnist_dir']}' (config key mnist_dir) does not exist; "
        "set mnist_dir to a folder holding the four MNIST files (snakemake --config mnist_dir=PATH)."
    )


def figure_settings(study):
    """The shared figure theme plus figures.<study>: a figure rule's params, so that changing
    another study's figure settings does not re-draw this study's figures."""
    return {
        k: v
        for k, v in config["figures"].items()
        if not isinstance(v, dict) or k == study
    }


# Figure formats written besides png (png is what the report embeds).
FIGURE_FORMATS = [f for f in dict.fromkeys(config["figures"]["formats"]) if f != "png"]
