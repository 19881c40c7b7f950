# Nar & Sastry (2018), "Residual Networks: Lyapunov Stability and Convex Decomposition":
# reproduction workflow. Every number lives in config.yaml; the rules are in workflow/rules,
# one file per study, each the same shape: shard -> aggregate -> figure -> report.
from snakemake.utils import min_version

from pipeline.config import validate

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# The schema and every rule between keys, before any job: `snakemake -n` fails on a bad config.
validate(config, workflow.source_path("workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"


report_replaced_resources()


include: "workflow/rules/data.smk"


# One rule file per study of the registry (pipeline/studies.py), then the report.
for study in studies.STUDIES:

    include: f"workflow/rules/{study.name}.smk"


include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),
