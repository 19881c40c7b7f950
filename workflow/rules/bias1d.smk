# 1-D bias study (docs/science.md sections 3-4 and 6.2; claims 5, 6 and 9): convex-concave
# residual pairs with scalar weights, trained with Nesterov's method from narrow and wide bias
# init intervals, and on a sub-grid also with non-gradient bias updates (kink search). One
# shard per depth (all targets x intervals x seeds, and the comparison's runs, as one batch):
# bias1d_shard -> bias1d_aggregate -> bias1d_figure. Everything else: pipeline/studies.py.
BIAS1D = studies.get("bias1d")
(BIAS1D_SHARD,) = BIAS1D.kinds


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    bias1d_aggregate,
    bias1d_figure,


rule bias1d_shard:
    output:
        **BIAS1D.shard_outputs(BIAS1D_SHARD),
    log:
        job_log(BIAS1D, "shard", BIAS1D_SHARD.pattern)["log"],
    benchmark:
        job_log(BIAS1D, "shard", BIAS1D_SHARD.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(BIAS1D, BIAS1D.shard_dir(BIAS1D_SHARD)),
    conda:
        ENV
    threads: config["bias1d"]["threads"]
    resources:
        **cluster_resources(BIAS1D),
    params:
        cfg=shard_config(BIAS1D_SHARD),
        scratch=BIAS1D.scratch(BIAS1D_SHARD),
        code=code([BIAS1D.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule bias1d_aggregate:
    input:
        aggregate_inputs(BIAS1D),
    output:
        **BIAS1D.aggregate_outputs(),
    log:
        job_log(BIAS1D, "aggregate")["log"],
    benchmark:
        job_log(BIAS1D, "aggregate")["benchmark"]
    wildcard_constraints:
        **constraints(BIAS1D, *BIAS1D.aggregate_outputs().values()),
    conda:
        ENV
    params:
        study=BIAS1D.name,
        code=code([BIAS1D.module("summary")], "aggregate.py"),
    script:
        "../scripts/aggregate.py"


rule bias1d_figure:
    input:
        unpack(figure_inputs(BIAS1D)),
    output:
        report(
            BIAS1D.figure_output(),
            caption="../report/figure.rst",
            category=BIAS1D.category,
            labels={"figure": "{figure}"},
        ),
        figure_formats(BIAS1D),
    log:
        job_log(BIAS1D, "figure", "{figure}")["log"],
    benchmark:
        job_log(BIAS1D, "figure", "{figure}")["benchmark"]
    wildcard_constraints:
        figure="|".join(BIAS1D.figures),
    conda:
        ENV
    params:
        figures=BIAS1D.module("figures"),
        settings=figure_settings(BIAS1D.name),
        caption=lambda wildcards: caption(BIAS1D.name, wildcards.figure),
        code=code([BIAS1D.module("figures")], "figure.py"),
    script:
        "../scripts/figure.py"
