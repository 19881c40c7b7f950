# MNIST (SPEC section 5, claim 7): the paper's 20-network convex-concave classifier and its
# baselines. One training job per variant (resumable: it checkpoints every epoch under
# results/mnist/<variant>/checkpoints/, which is deliberately NOT a declared output, so
# Snakemake never deletes it when a job fails or is restarted; the job removes it once its
# outputs are written), an aggregate of all variants, and figures drawn from the aggregate.
MNIST = config["mnist"]
MNIST_FIGURES = ["accuracy", "gap", "drift"]


wildcard_constraints:
    variant="pair|convex_only|plain_mlp",


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    mnist_aggregate,
    mnist_figures,


rule mnist_train:
    input:
        expand(f"{MNIST_RAW}/{{name}}", name=MNIST_FILES),
    output:
        metrics="results/mnist/{variant}/metrics.parquet",
        drift="results/mnist/{variant}/drift.parquet",
        lipschitz="results/mnist/{variant}/lipschitz.parquet",
        model="results/mnist/{variant}/model.pt",
    log:
        "results/logs/mnist/train_{variant}.log",
    benchmark:
        "results/benchmarks/mnist/train_{variant}.tsv"
    conda:
        ENV
    threads: MNIST["threads"]
    resources:
        gpu=MNIST["gpu"],
    params:
        # The block without the variant list, so adding a variant trains only that one.
        mnist={k: v for k, v in MNIST.items() if k not in ("enabled", "variants")},
        checkpoint_dir="results/mnist/{variant}/checkpoints",
    script:
        "../scripts/mnist_train.py"


rule mnist_aggregate:
    input:
        metrics=expand(
            "results/mnist/{variant}/metrics.parquet", variant=MNIST["variants"]
        ),
        drift=expand("results/mnist/{variant}/drift.parquet", variant=MNIST["variants"]),
        lipschitz=expand(
            "results/mnist/{variant}/lipschitz.parquet", variant=MNIST["variants"]
        ),
    output:
        metrics="results/mnist/metrics.parquet",
        drift="results/mnist/drift.parquet",
        summary="results/mnist/summary.csv",
    log:
        "results/logs/mnist/aggregate.log",
    benchmark:
        "results/benchmarks/mnist/aggregate.tsv"
    conda:
        ENV
    params:
        variants=MNIST["variants"],
    script:
        "../scripts/mnist_aggregate.py"


rule mnist_figures:
    input:
        metrics=rules.mnist_aggregate.output.metrics,
        drift=rules.mnist_aggregate.output.drift,
    output:
        accuracy=report(
            "results/mnist/figures/accuracy.png",
            caption="../report/mnist_accuracy.rst",
            category="MNIST",
            labels={"figure": "train and test accuracy per epoch"},
        ),
        gap=report(
            "results/mnist/figures/gap.png",
            caption="../report/mnist_gap.rst",
            category="MNIST",
            labels={"figure": "train-test accuracy gap per epoch"},
        ),
        drift=report(
            "results/mnist/figures/drift.png",
            caption="../report/mnist_drift.rst",
            category="MNIST",
            labels={"figure": "bias drift vs weight drift"},
        ),
        other=expand(
            "results/mnist/figures/{name}.{fmt}",
            name=MNIST_FIGURES,
            fmt=FIGURE_FORMATS,
        ),
    log:
        "results/logs/mnist/figures.log",
    benchmark:
        "results/benchmarks/mnist/figures.tsv"
    conda:
        ENV
    params:
        figures=figure_settings("mnist"),
    script:
        "../scripts/mnist_figures.py"


if MNIST["enabled"]:
    TARGETS.extend(
        [
            *expand("results/mnist/{variant}/model.pt", variant=MNIST["variants"]),
            *rules.mnist_aggregate.output,
            *rules.mnist_figures.output,
        ]
    )
    FIGURES["mnist"] = [f"results/mnist/figures/{name}.png" for name in MNIST_FIGURES]
