# Edge-of-stability study (docs/science.md section 6.3; claims 10-11, ours): the scalar network
# between 2/phi and delta* (edge_scalar, one per depth: every target, data scale, start, seed
# and step as one batch), the sharpness time series of the matrix networks (edge_matrix, one
# per network and depth) and the trainability maps with their zooms and box-counting
# dimensions (edge_map, one per map and depth): -> edge_aggregate -> edge_figure.
# Everything else: pipeline/studies.py.
EDGE = studies.get("edge")
EDGE_SCALAR, EDGE_MATRIX, EDGE_MAP = EDGE.kinds


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    edge_aggregate,
    edge_figure,


rule edge_scalar:
    output:
        **EDGE.shard_outputs(EDGE_SCALAR),
    log:
        job_log(EDGE, "shard", EDGE_SCALAR.pattern)["log"],
    benchmark:
        job_log(EDGE, "shard", EDGE_SCALAR.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(EDGE, EDGE.shard_dir(EDGE_SCALAR)),
    conda:
        ENV
    threads: config["edge"]["threads"]
    resources:
        **cluster_resources(EDGE),
    params:
        cfg=shard_config(EDGE_SCALAR),
        scratch=EDGE.scratch(EDGE_SCALAR),
        code=code([EDGE.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule edge_matrix:
    output:
        **EDGE.shard_outputs(EDGE_MATRIX),
    log:
        job_log(EDGE, "shard", EDGE_MATRIX.pattern)["log"],
    benchmark:
        job_log(EDGE, "shard", EDGE_MATRIX.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(EDGE, EDGE.shard_dir(EDGE_MATRIX)),
    conda:
        ENV
    threads: config["edge"]["threads"]
    resources:
        **cluster_resources(EDGE),
    params:
        cfg=shard_config(EDGE_MATRIX),
        scratch=EDGE.scratch(EDGE_MATRIX),
        code=code([EDGE.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule edge_map:
    output:
        **EDGE.shard_outputs(EDGE_MAP),
    log:
        job_log(EDGE, "shard", EDGE_MAP.pattern)["log"],
    benchmark:
        job_log(EDGE, "shard", EDGE_MAP.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(EDGE, EDGE.shard_dir(EDGE_MAP)),
    conda:
        ENV
    threads: config["edge"]["threads"]
    resources:
        **cluster_resources(EDGE),
    params:
        cfg=shard_config(EDGE_MAP),
        scratch=EDGE.scratch(EDGE_MAP),
        code=code([EDGE.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule edge_aggregate:
    input:
        aggregate_inputs(EDGE),
    output:
        **EDGE.aggregate_outputs(),
    log:
        job_log(EDGE, "aggregate")["log"],
    benchmark:
        job_log(EDGE, "aggregate")["benchmark"]
    wildcard_constraints:
        **constraints(EDGE, *EDGE.aggregate_outputs().values()),
    conda:
        ENV
    params:
        study=EDGE.name,
        code=code([EDGE.module("summary")], "aggregate.py"),
    script:
        "../scripts/aggregate.py"


rule edge_figure:
    input:
        unpack(figure_inputs(EDGE)),
    output:
        report(
            EDGE.figure_output(),
            caption="../report/figure.rst",
            category=EDGE.category,
            labels={"figure": "{figure}"},
        ),
        figure_formats(EDGE),
    log:
        job_log(EDGE, "figure", "{figure}")["log"],
    benchmark:
        job_log(EDGE, "figure", "{figure}")["benchmark"]
    wildcard_constraints:
        figure="|".join(EDGE.figures),
    conda:
        ENV
    params:
        figures=EDGE.module("figures"),
        settings=figure_settings(EDGE.name),
        caption=lambda wildcards: caption(EDGE.name, wildcards.figure),
        code=code([EDGE.module("figures")], "figure.py"),
    script:
        "../scripts/figure.py"
