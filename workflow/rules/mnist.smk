# MNIST study (docs/science.md section 5; claim 7): the paper's 20-network convex-concave
# classifier and its baselines, in named parts (mnist.parts: run sets with their own variants,
# seeds and a few overrides). One shard per part, variant and seed (resumable: it checkpoints
# every epoch under its shards/ folder in checkpoints/, deliberately NOT a declared output,
# so Snakemake never deletes it when a job fails or is killed; the job removes it once its
# outputs are written): mnist_shard -> mnist_aggregate (per variant, every part) -> mnist_figure.
from pipeline.config import mnist_part, mnist_parts

MNIST = config["mnist"]
MNIST_PARTS = mnist_parts(config)
# Variants in the order the parts first name them.
MNIST_VARIANTS = list(
    dict.fromkeys(v for p in MNIST_PARTS.values() for v in p["variants"])
)
MNIST_TABLES = ("metrics", "drift", "lipschitz")
MNIST_SHARD = "results/mnist/{variant}/shards/{part}-seed{seed}"


# Figures: name -> the tables it reads (of every variant).
MNIST_FIGURES = {
    "accuracy": ["metrics"],
    "gap": ["metrics"],
    "drift": ["drift"],
}


wildcard_constraints:
    variant="pair|convex_only|plain_mlp",
    part="|".join(MNIST_PARTS) or "(?!)",


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    mnist_aggregate,
    mnist_figure,


rule mnist_shard:
    input:
        expand(f"{MNIST_RAW}/{{name}}", name=MNIST_FILES),
    output:
        **{t: f"{MNIST_SHARD}/{t}.parquet" for t in MNIST_TABLES},
        model=f"{MNIST_SHARD}/model.pt",
    log:
        "results/logs/mnist/{variant}/shard_{part}-seed{seed}.log",
    benchmark:
        "results/benchmarks/mnist/{variant}/shard_{part}-seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: MNIST["threads"]
    resources:
        gpu=MNIST["gpu"],
    params:
        # the part's numbers without its variant and seed lists: adding one trains only that one
        cfg=lambda wildcards: mnist_part(config, wildcards.part),
        checkpoint_dir=f"{MNIST_SHARD}/checkpoints",
    script:
        "../scripts/mnist_shard.py"


rule mnist_aggregate:
    input:
        lambda wildcards: [
            f"{shard}/{t}.parquet"
            for shard in mnist_shards(wildcards.variant)
            for t in MNIST_TABLES
        ],
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
