# 1-D bias study (SPEC sections 3-4): convex-concave residual pairs with scalar weights,
# trained with Nesterov's method from narrow and wide bias init intervals.
# One training job per depth (all targets x intervals x seeds batched), then one table per kind,
# then the figures (from the aggregated tables only).
BIAS1D = config["bias1d"]
BIAS1D_TABLES = ["runs", "estimates", "curves", "layers", "points", "truth"]
BIAS1D_FIGURES = ["fit", "drift", "lipschitz"]


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    bias1d_aggregate,
    bias1d_figures,


rule bias1d_train:
    output:
        **{
            name: f"results/bias1d/shards/L{{depth}}/{name}.parquet"
            for name in BIAS1D_TABLES
        },
    log:
        "results/logs/bias1d/train_L{depth}.log",
    benchmark:
        "results/benchmarks/bias1d/train_L{depth}.tsv"
    wildcard_constraints:
        depth=r"\d+",
    conda:
        ENV
    params:
        # The block without the depth list, so adding a depth runs only its own shard.
        cfg={k: v for k, v in BIAS1D.items() if k not in ("enabled", "depths")},
    script:
        "../scripts/bias1d_train.py"


rule bias1d_aggregate:
    input:
        expand(
            "results/bias1d/shards/L{depth}/{name}.parquet",
            depth=BIAS1D["depths"],
            name=BIAS1D_TABLES,
        ),
    output:
        **{name: f"results/bias1d/{name}.parquet" for name in BIAS1D_TABLES},
        summary="results/bias1d/summary.csv",
    log:
        "results/logs/bias1d/aggregate.log",
    benchmark:
        "results/benchmarks/bias1d/aggregate.tsv"
    conda:
        ENV
    params:
        tables=BIAS1D_TABLES,
    script:
        "../scripts/bias1d_aggregate.py"


rule bias1d_figures:
    input:
        runs="results/bias1d/runs.parquet",
        estimates="results/bias1d/estimates.parquet",
        points="results/bias1d/points.parquet",
        truth="results/bias1d/truth.parquet",
    output:
        **{
            fig: report(
                f"results/bias1d/figures/{fig}.png",
                caption=f"../report/bias1d_{fig}.rst",
                category="1-D bias study",
                labels={"figure": fig},
            )
            for fig in BIAS1D_FIGURES
        },
        others=expand(
            "results/bias1d/figures/{fig}.{fmt}",
            fig=BIAS1D_FIGURES,
            fmt=FIGURE_FORMATS,
        ),
    log:
        "results/logs/bias1d/figures.log",
    benchmark:
        "results/benchmarks/bias1d/figures.tsv"
    conda:
        ENV
    params:
        figures=figure_settings("bias1d"),
    script:
        "../scripts/bias1d_figures.py"


if BIAS1D["enabled"]:
    TARGETS.extend(rules.bias1d_aggregate.output)
    FIGURES["bias1d"] = [f"results/bias1d/figures/{f}.png" for f in BIAS1D_FIGURES]
    TARGETS.extend(FIGURES["bias1d"])
