# Step-size study (docs/science.md section 6.1; claim 8, ours): fixed, curvature-controlled,
# Polyak, AdGD and Armijo steps on the scalar and matrix networks (stepsize_shard, one per
# problem and depth: every rule, step factor, target, start and seed as one batch), and the
# regions of attraction of the scalar network (stepsize_basin, one per depth):
# -> stepsize_aggregate -> stepsize_figure. Everything else: pipeline/studies.py.
STEPSIZE = studies.get("stepsize")
STEPSIZE_SHARD, STEPSIZE_BASIN = STEPSIZE.kinds


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    stepsize_aggregate,
    stepsize_figure,


rule stepsize_shard:
    output:
        **STEPSIZE.shard_outputs(STEPSIZE_SHARD),
    log:
        job_log(STEPSIZE, "shard", STEPSIZE_SHARD.pattern)["log"],
    benchmark:
        job_log(STEPSIZE, "shard", STEPSIZE_SHARD.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(STEPSIZE, STEPSIZE.shard_dir(STEPSIZE_SHARD)),
    conda:
        ENV
    threads: config["stepsize"]["threads"]
    resources:
        **cluster_resources(STEPSIZE),
    params:
        cfg=shard_config(STEPSIZE_SHARD),
        scratch=STEPSIZE.scratch(STEPSIZE_SHARD),
        code=code([STEPSIZE.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule stepsize_basin:
    output:
        **STEPSIZE.shard_outputs(STEPSIZE_BASIN),
    log:
        job_log(STEPSIZE, "shard", STEPSIZE_BASIN.pattern)["log"],
    benchmark:
        job_log(STEPSIZE, "shard", STEPSIZE_BASIN.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(STEPSIZE, STEPSIZE.shard_dir(STEPSIZE_BASIN)),
    conda:
        ENV
    threads: config["stepsize"]["threads"]
    resources:
        **cluster_resources(STEPSIZE),
    params:
        cfg=shard_config(STEPSIZE_BASIN),
        scratch=STEPSIZE.scratch(STEPSIZE_BASIN),
        code=code([STEPSIZE.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule stepsize_aggregate:
    input:
        aggregate_inputs(STEPSIZE),
    output:
        **STEPSIZE.aggregate_outputs(),
    log:
        job_log(STEPSIZE, "aggregate")["log"],
    benchmark:
        job_log(STEPSIZE, "aggregate")["benchmark"]
    wildcard_constraints:
        **constraints(STEPSIZE, *STEPSIZE.aggregate_outputs().values()),
    conda:
        ENV
    params:
        study=STEPSIZE.name,
        code=code([STEPSIZE.module("summary")], "aggregate.py"),
    script:
        "../scripts/aggregate.py"


rule stepsize_figure:
    input:
        unpack(figure_inputs(STEPSIZE)),
    output:
        report(
            STEPSIZE.figure_output(),
            caption="../report/figure.rst",
            category=STEPSIZE.category,
            labels={"figure": "{figure}"},
        ),
        figure_formats(STEPSIZE),
    log:
        job_log(STEPSIZE, "figure", "{figure}")["log"],
    benchmark:
        job_log(STEPSIZE, "figure", "{figure}")["benchmark"]
    wildcard_constraints:
        figure="|".join(STEPSIZE.figures),
    conda:
        ENV
    params:
        figures=STEPSIZE.module("figures"),
        settings=figure_settings(STEPSIZE.name),
        caption=lambda wildcards: caption(STEPSIZE.name, wildcards.figure),
        code=code([STEPSIZE.module("figures")], "figure.py"),
    script:
        "../scripts/figure.py"
