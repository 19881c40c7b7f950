# Stability study (docs/science.md sections 1-2; claims 1-4): gradient descent on deep linear
# networks, thousands of runs per job as one batched tensor program. Three experiments, each
# sharded by depth: stability_shard -> stability_aggregate (per experiment) -> stability_figure.
# Paths, tables, figures and the config slice of each shard come from the registry entry
# (pipeline/studies.py); changing a grid re-runs only that experiment's shards.
STABILITY = studies.get("stability")
(STABILITY_SHARD,) = STABILITY.kinds


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    stability_aggregate,
    stability_figure,


rule stability_shard:
    output:
        **STABILITY.shard_outputs(STABILITY_SHARD),
    log:
        job_log(STABILITY, "shard", STABILITY_SHARD.pattern)["log"],
    benchmark:
        job_log(STABILITY, "shard", STABILITY_SHARD.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(STABILITY, STABILITY.shard_dir(STABILITY_SHARD)),
    conda:
        ENV
    threads: config["stability"]["threads"]
    resources:
        **cluster_resources(STABILITY),
    params:
        cfg=shard_config(STABILITY_SHARD),
        scratch=STABILITY.scratch(STABILITY_SHARD),
        code=code([STABILITY.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule stability_aggregate:
    input:
        aggregate_inputs(STABILITY),
    output:
        **STABILITY.aggregate_outputs(),
    log:
        job_log(STABILITY, "aggregate")["log"],
    benchmark:
        job_log(STABILITY, "aggregate")["benchmark"]
    wildcard_constraints:
        **constraints(STABILITY, *STABILITY.aggregate_outputs().values()),
    conda:
        ENV
    params:
        study=STABILITY.name,
        code=code([STABILITY.module("summary")], "aggregate.py"),
    script:
        "../scripts/aggregate.py"


rule stability_figure:
    input:
        unpack(figure_inputs(STABILITY)),
    output:
        report(
            STABILITY.figure_output(),
            caption="../report/figure.rst",
            category=STABILITY.category,
            labels={"figure": "{figure}"},
        ),
        figure_formats(STABILITY),
    log:
        job_log(STABILITY, "figure", "{figure}")["log"],
    benchmark:
        job_log(STABILITY, "figure", "{figure}")["benchmark"]
    wildcard_constraints:
        figure="|".join(STABILITY.figures),
    conda:
        ENV
    params:
        figures=STABILITY.module("figures"),
        settings=figure_settings(STABILITY.name),
        caption=lambda wildcards: caption(STABILITY.name, wildcards.figure),
        code=code([STABILITY.module("figures")], "figure.py"),
    script:
        "../scripts/figure.py"
