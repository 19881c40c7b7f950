# 1-D bias study (docs/science.md sections 3-4 and 6.2; claims 5, 6 and 9): convex-concave
# residual pairs with scalar weights, trained with Nesterov's method from narrow and wide bias
# init intervals, and on a sub-grid also with non-gradient bias updates (kink search). One
# shard per depth (all targets x intervals x seeds, and the comparison's runs, as one batch):
# bias1d_shard -> bias1d_aggregate -> bias1d_figure.
BIAS1D = config["bias1d"]
BIAS1D_TABLES = (
    "runs",
    "snapshots",
    "estimates",
    "curves",
    "layers",
    "points",
    "truth",
    "progress",
    "timing",
)
# Figures: name -> the tables it reads.
BIAS1D_FIGURES = {
    "fit": ["runs", "estimates", "points", "truth"],
    "drift": ["runs"],
    "lipschitz": ["runs"],
    "budget": ["robustness"],
    "updates_loss": ["runs", "progress"],
    "updates_generalisation": ["runs"],
    "updates_fit": ["runs", "estimates", "points", "truth"],
}


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    bias1d_aggregate,
    bias1d_figure,


rule bias1d_shard:
    output:
        **{t: f"results/bias1d/shards/L{{depth}}/{t}.parquet" for t in BIAS1D_TABLES},
    log:
        "results/logs/bias1d/shard_L{depth}.log",
    benchmark:
        "results/benchmarks/bias1d/shard_L{depth}.tsv"
    wildcard_constraints:
        depth=r"\d+",
    conda:
        ENV
    threads: BIAS1D["threads"]
    params:
        # without the depth list, so adding a depth runs only its own shard
        cfg=numbers(config, "bias1d", drop=("enabled", "depths")),
    script:
        "../scripts/bias1d_shard.py"


rule bias1d_aggregate:
    input:
        expand(
            "results/bias1d/shards/L{depth}/{table}.parquet",
            depth=BIAS1D["depths"],
            table=BIAS1D_TABLES,
        ),
    output:
        **{t: f"results/bias1d/{t}.parquet" for t in BIAS1D_TABLES},
        summary="results/bias1d/summary.csv",
        robustness="results/bias1d/robustness.parquet",
        updates="results/bias1d/updates.csv",
    log:
        "results/logs/bias1d/aggregate.log",
    benchmark:
        "results/benchmarks/bias1d/aggregate.tsv"
    conda:
        ENV
    params:
        study="bias1d",
    script:
        "../scripts/aggregate.py"


rule bias1d_figure:
    input:
        unpack(
            lambda wildcards: {
                t: f"results/bias1d/{t}.parquet"
                for t in BIAS1D_FIGURES[wildcards.figure]
            }
        ),
    output:
        report(
            "results/bias1d/figures/{figure}.png",
            caption="../report/figure.rst",
            category="1-D bias study",
            labels={"figure": "{figure}"},
        ),
        expand("results/bias1d/figures/{{figure}}.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/bias1d/figure_{figure}.log",
    benchmark:
        "results/benchmarks/bias1d/figure_{figure}.tsv"
    wildcard_constraints:
        figure="|".join(BIAS1D_FIGURES),
    conda:
        ENV
    params:
        figures="pipeline.bias1d.figures",
        settings=figure_settings("bias1d"),
        caption=lambda wildcards: caption("bias1d", wildcards.figure),
    script:
        "../scripts/figure.py"
