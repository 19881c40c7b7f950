# Step-size study (docs/science.md section 6.1; claim 8, ours): fixed, curvature-controlled,
# Polyak, AdGD and Armijo steps on the scalar and matrix networks, and the regions of
# attraction of the scalar network. One shard per problem and depth (every rule, step factor,
# target, start and seed as one batch): stepsize_shard -> stepsize_aggregate -> stepsize_figure.
# A shard's params hold only what its numbers depend on (the engine and rule settings and its
# problem's block without the depth list), so changing a grid re-runs only those shards.
STEPSIZE = config["stepsize"]
STEPSIZE_BLOCKS = ("scalar", "matrix", "basin")
STEPSIZE_TABLES = ("runs", "curves", "basins")
# Figures: name -> the tables it reads.
STEPSIZE_FIGURES = {
    "success": ["runs"],
    "cost_depth": ["runs"],
    "basins": ["basins"],
}


def stepsize_shards():
    """{shard name: (problem, depth)} of the enabled problems, e.g. scalar_L8, double_L4."""
    if not STEPSIZE["enabled"]:
        return {}
    problems = []
    if STEPSIZE["scalar"]["enabled"]:
        problems.append(("scalar", STEPSIZE["scalar"]["depths"]))
    if STEPSIZE["matrix"]["enabled"]:
        problems += [
            (net, STEPSIZE["matrix"]["depths"])
            for net in STEPSIZE["matrix"]["networks"]
        ]
    if STEPSIZE["basin"]["enabled"]:
        problems.append(("basin", STEPSIZE["basin"]["depths"]))
    return {f"{p}_L{d}": (p, d) for p, depths in problems for d in depths}


def stepsize_tables(wildcards=None):
    """Every table of every shard (a problem's basins and a map's runs and curves are empty)."""
    return expand(
        "results/stepsize/shards/{shard}/{table}.parquet",
        shard=stepsize_shards(),
        table=STEPSIZE_TABLES,
    )


def stepsize_outputs():
    shards = stepsize_shards().values()
    problems = {p != "basin" for p, _ in shards}
    figures = [
        name
        for name in STEPSIZE_FIGURES
        if (name == "basins" and False in problems)
        or (name != "basins" and True in problems)
    ]
    return {
        "tables": list(rules.stepsize_aggregate.output) if shards else [],
        "figures": [f"results/stepsize/figures/{name}.png" for name in figures],
    }


def stepsize_shard_cfg(wildcards):
    engine = numbers(config, "stepsize", drop=("enabled", *STEPSIZE_BLOCKS))
    block = "matrix" if wildcards.problem in ("single", "double") else wildcards.problem
    drop = ("enabled", "depths", "networks")
    return canonical({**engine, block: numbers(config, f"stepsize.{block}", drop=drop)})


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
        cfg=stepsize_shard_cfg,
    script:
        "../scripts/stepsize_shard.py"


rule stepsize_aggregate:
    input:
        stepsize_tables,
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
        study="stepsize",
        settings=figure_settings("stepsize"),
        caption=lambda wildcards: caption("stepsize", wildcards.figure),
    script:
        "../scripts/figure.py"
