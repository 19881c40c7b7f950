# MNIST study (docs/science.md section 5; claim 7): the paper's 20-network convex-concave
# classifier and its baselines. One shard per variant and seed (resumable: it checkpoints
# every epoch under its shards/ folder in checkpoints/, deliberately NOT a declared output,
# so Snakemake never deletes it when a job fails or is killed; the job removes it once its
# outputs are written): mnist_shard -> mnist_aggregate (per variant) -> mnist_figure.
MNIST = config["mnist"]
MNIST_VARIANTS = MNIST["variants"] if MNIST["enabled"] else []
MNIST_TABLES = ("metrics", "drift", "lipschitz")
# Figures: name -> the tables it reads (of every variant).
MNIST_FIGURES = {
    "accuracy": ["metrics"],
    "gap": ["metrics"],
    "drift": ["drift"],
}


wildcard_constraints:
    variant="pair|convex_only|plain_mlp",


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    mnist_aggregate,
    mnist_figure,


rule mnist_shard:
    input:
        expand(f"{MNIST_RAW}/{{name}}", name=MNIST_FILES),
    output:
        **{
            t: f"results/mnist/{{variant}}/shards/seed{{seed}}/{t}.parquet"
            for t in MNIST_TABLES
        },
        model="results/mnist/{variant}/shards/seed{seed}/model.pt",
    log:
        "results/logs/mnist/{variant}/shard_seed{seed}.log",
    benchmark:
        "results/benchmarks/mnist/{variant}/shard_seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: MNIST["threads"]
    resources:
        gpu=MNIST["gpu"],
    params:
        # without the variant and seed lists, so adding one trains only that one
        cfg=numbers(config, "mnist", drop=("enabled", "variants", "seeds")),
        checkpoint_dir="results/mnist/{variant}/shards/seed{seed}/checkpoints",
    script:
        "../scripts/mnist_shard.py"


rule mnist_aggregate:
    input:
        expand(
            "results/mnist/{{variant}}/shards/seed{seed}/{table}.parquet",
            seed=MNIST["seeds"],
            table=MNIST_TABLES,
        ),
    output:
        **{t: f"results/mnist/{{variant}}/{t}.parquet" for t in MNIST_TABLES},
        summary="results/mnist/{variant}/summary.csv",
    log:
        "results/logs/mnist/{variant}/aggregate.log",
    benchmark:
        "results/benchmarks/mnist/{variant}/aggregate.tsv"
    conda:
        ENV
    params:
        study="mnist",
    script:
        "../scripts/aggregate.py"


rule mnist_figure:
    input:
        unpack(
            lambda wildcards: {
                t: expand(
                    "results/mnist/{variant}/{t}.parquet", variant=MNIST_VARIANTS, t=t
                )
                for t in MNIST_FIGURES[wildcards.figure]
            }
        ),
    output:
        report(
            "results/mnist/figures/{figure}.png",
            caption="../report/figure.rst",
            category="MNIST",
            labels={"figure": "{figure}"},
        ),
        expand("results/mnist/figures/{{figure}}.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/mnist/figure_{figure}.log",
    benchmark:
        "results/benchmarks/mnist/figure_{figure}.tsv"
    wildcard_constraints:
        figure="|".join(MNIST_FIGURES),
    conda:
        ENV
    params:
        figures="pipeline.mnist.figures",
        settings=figure_settings("mnist"),
        caption=lambda wildcards: caption("mnist", wildcards.figure),
    script:
        "../scripts/figure.py"
