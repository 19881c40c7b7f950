# Step-size study (docs/science.md section 6.1; claim 8, ours): fixed, curvature-controlled,
# Polyak, AdGD and Armijo steps on the scalar and matrix networks, and the regions of
# attraction of the scalar network. One shard per problem and depth (every rule, step factor,
# target, start and seed as one batch): stepsize_shard -> stepsize_aggregate -> stepsize_figure.
# A shard's params hold only what its numbers depend on (the engine and rule settings and its
# problem's block without the depth and network lists), so changing a grid re-runs only those
# shards.
STEPSIZE = config["stepsize"]
STEPSIZE_BLOCKS = ("scalar", "matrix", "basin")
STEPSIZE_TABLES = ("runs", "curves", "basins")
# Figures: name -> the tables it reads.
STEPSIZE_FIGURES = {
    "success": ["runs"],
    "cost_depth": ["runs"],
    "basins": ["basins"],
}
# The config block of each problem.
STEPSIZE_BLOCK_OF = {
    "scalar": "scalar",
    "single": "matrix",
    "double": "matrix",
    "basin": "basin",
}
# Shards of the enabled problems: name -> (problem, depth), e.g. scalar_L8, double_L4, basin_L2.
STEPSIZE_SHARDS = {
    f"{problem}_L{depth}": (problem, depth)
    for problem, block in STEPSIZE_BLOCK_OF.items()
    if STEPSIZE["enabled"]
    and STEPSIZE[block]["enabled"]
    and (block != "matrix" or problem in STEPSIZE["matrix"]["networks"])
    for depth in STEPSIZE[block]["depths"]
}


wildcard_constraints:
    problem="scalar|single|double|basin",


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    stepsize_aggregate,
    stepsize_figure,


rule stepsize_shard:
    output:
        **{
            t: f"results/stepsize/shards/{{problem}}_L{{depth}}/{t}.parquet"
            for t in STEPSIZE_TABLES
        },
    log:
        "results/logs/stepsize/shard_{problem}_L{depth}.log",
    benchmark:
        "results/benchmarks/stepsize/shard_{problem}_L{depth}.tsv"
    wildcard_constraints:
        depth=r"\d+",
    conda:
        ENV
    threads: STEPSIZE["threads"]
    params:
        # the engine and rule settings and this problem's block, without its grid lists
        cfg=lambda wildcards: canonical(
            {
                **numbers(config, "stepsize", drop=("enabled", *STEPSIZE_BLOCKS)),
                STEPSIZE_BLOCK_OF[wildcards.problem]: numbers(
                    config,
                    f"stepsize.{STEPSIZE_BLOCK_OF[wildcards.problem]}",
                    drop=("enabled", "depths", "networks"),
                ),
            }
        ),
    script:
        "../scripts/stepsize_shard.py"


rule stepsize_aggregate:
    input:
        # every table of every shard (a problem's basins and a map's runs and curves are empty)
        expand(
            "results/stepsize/shards/{shard}/{table}.parquet",
            shard=STEPSIZE_SHARDS,
            table=STEPSIZE_TABLES,
        ),
    output:
        **{t: f"results/stepsize/{t}.parquet" for t in STEPSIZE_TABLES},
        summary="results/stepsize/summary.csv",
    log:
        "results/logs/stepsize/aggregate.log",
    benchmark:
        "results/benchmarks/stepsize/aggregate.tsv"
    conda:
        ENV
    params:
        study="stepsize",
    script:
        "../scripts/aggregate.py"


rule stepsize_figure:
    input:
        unpack(
            lambda wildcards: {
                t: f"results/stepsize/{t}.parquet"
                for t in STEPSIZE_FIGURES[wildcards.figure]
            }
        ),
    output:
        report(
            "results/stepsize/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Step sizes",
            labels={"figure": "{figure}"},
        ),
        expand("results/stepsize/figures/{{figure}}.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/stepsize/figure_{figure}.log",
    benchmark:
        "results/benchmarks/stepsize/figure_{figure}.tsv"
    wildcard_constraints:
        figure="|".join(STEPSIZE_FIGURES),
    conda:
        ENV
    params:
        figures="pipeline.stepsize.figures",
        settings=figure_settings("stepsize"),
        caption=lambda wildcards: caption("stepsize", wildcards.figure),
    script:
        "../scripts/figure.py"
