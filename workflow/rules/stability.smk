# Stability study (docs/science.md sections 1-2; claims 1-4): gradient descent on deep linear
# networks, thousands of runs per job as one batched tensor program. Three parts, each
# sharded by depth: stability_shard -> stability_aggregate (per part) -> stability_figure.
# A shard's params hold only what its numbers depend on (the engine settings and its part's
# block without the depth list), so changing a grid re-runs only that part's shards.
STABILITY = config["stability"]
STABILITY_ALL_PARTS = ("scalar", "depth", "single_vs_double")
STABILITY_PARTS = [
    p for p in STABILITY_ALL_PARTS if STABILITY["enabled"] and STABILITY[p]["enabled"]
]
STABILITY_TABLES = ("runs", "curves")
# Figures: name -> (the part whose tables it reads, the tables).
STABILITY_FIGURES = {
    "phase_diagram": ("scalar", ["runs"]),
    "sharpness": ("scalar", ["runs"]),
    "depth": ("depth", ["runs"]),
    "depth_region": ("depth", ["runs"]),
    "single_vs_double": ("single_vs_double", ["runs", "curves"]),
}


wildcard_constraints:
    part="|".join(STABILITY_ALL_PARTS),


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    stability_aggregate,
    stability_figure,


rule stability_shard:
    output:
        **{
            t: f"results/stability/{{part}}/shards/L{{depth}}/{t}.parquet"
            for t in STABILITY_TABLES
        },
    log:
        "results/logs/stability/{part}/shard_L{depth}.log",
    benchmark:
        "results/benchmarks/stability/{part}/shard_L{depth}.tsv"
    wildcard_constraints:
        depth=r"\d+",
    conda:
        ENV
    threads: STABILITY["threads"]
    params:
        # the engine settings and this part's block, without its depth list
        cfg=lambda wildcards: canonical(
            {
                **numbers(config, "stability", drop=("enabled", *STABILITY_ALL_PARTS)),
                wildcards.part: numbers(
                    config, f"stability.{wildcards.part}", drop=("enabled", "depths")
                ),
            }
        ),
    script:
        "../scripts/stability_shard.py"


rule stability_aggregate:
    input:
        lambda wildcards: expand(
            "results/stability/{part}/shards/L{depth}/{table}.parquet",
            part=wildcards.part,
            depth=STABILITY[wildcards.part]["depths"],
            table=STABILITY_TABLES,
        ),
    output:
        **{t: f"results/stability/{{part}}/{t}.parquet" for t in STABILITY_TABLES},
        summary="results/stability/{part}/summary.csv",
    log:
        "results/logs/stability/{part}/aggregate.log",
    benchmark:
        "results/benchmarks/stability/{part}/aggregate.tsv"
    conda:
        ENV
    params:
        study="stability",
    script:
        "../scripts/aggregate.py"


rule stability_figure:
    input:
        unpack(
            lambda wildcards: {
                t: f"results/stability/{STABILITY_FIGURES[wildcards.figure][0]}/{t}.parquet"
                for t in STABILITY_FIGURES[wildcards.figure][1]
            }
        ),
    output:
        report(
            "results/stability/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Stability",
            labels={"figure": "{figure}"},
        ),
        expand("results/stability/figures/{{figure}}.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/stability/figure_{figure}.log",
    benchmark:
        "results/benchmarks/stability/figure_{figure}.tsv"
    wildcard_constraints:
        figure="|".join(STABILITY_FIGURES),
    conda:
        ENV
    params:
        figures="pipeline.stability.figures",
        settings=figure_settings("stability"),
        caption=lambda wildcards: caption("stability", wildcards.figure),
    script:
        "../scripts/figure.py"
