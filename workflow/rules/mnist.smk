# MNIST study (docs/science.md section 5; claim 7): the paper's 20-network convex-concave
# classifier and its baselines, in named parts (mnist.parts: run sets with their own variants,
# seeds and a few overrides). One shard per variant, part and seed, resumable from the
# per-epoch checkpoint in its scratch folder (not a declared output, so Snakemake never
# deletes it when a job fails or is killed; the job removes it once its outputs are written):
# mnist_shard -> mnist_aggregate (per variant, every part) -> mnist_figure.
MNIST = studies.get("mnist")
(MNIST_SHARD,) = MNIST.kinds


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    mnist_aggregate,
    mnist_figure,


rule mnist_shard:
    input:
        **{name: studies.DATA[name] for name in MNIST.inputs},
    output:
        **MNIST.shard_outputs(MNIST_SHARD),
    log:
        job_log(MNIST, "shard", MNIST_SHARD.pattern)["log"],
    benchmark:
        job_log(MNIST, "shard", MNIST_SHARD.pattern)["benchmark"]
    wildcard_constraints:
        **constraints(MNIST, MNIST.shard_dir(MNIST_SHARD)),
    conda:
        ENV
    threads: config["mnist"]["threads"]
    resources:
        **cluster_resources(MNIST),
    params:
        cfg=shard_config(MNIST_SHARD),
        scratch=MNIST.scratch(MNIST_SHARD),
        code=code([MNIST.module("study")], "shard.py"),
    script:
        "../scripts/shard.py"


rule mnist_aggregate:
    input:
        aggregate_inputs(MNIST),
    output:
        **MNIST.aggregate_outputs(),
    log:
        job_log(MNIST, "aggregate")["log"],
    benchmark:
        job_log(MNIST, "aggregate")["benchmark"]
    wildcard_constraints:
        **constraints(MNIST, *MNIST.aggregate_outputs().values()),
    conda:
        ENV
    params:
        study=MNIST.name,
        code=code([MNIST.module("summary")], "aggregate.py"),
    script:
        "../scripts/aggregate.py"


rule mnist_figure:
    input:
        unpack(figure_inputs(MNIST)),
    output:
        report(
            MNIST.figure_output(),
            caption="../report/figure.rst",
            category=MNIST.category,
            labels={"figure": "{figure}"},
        ),
        figure_formats(MNIST),
    log:
        job_log(MNIST, "figure", "{figure}")["log"],
    benchmark:
        job_log(MNIST, "figure", "{figure}")["benchmark"]
    wildcard_constraints:
        figure="|".join(MNIST.figures),
    conda:
        ENV
    params:
        figures=MNIST.module("figures"),
        settings=figure_settings(MNIST.name),
        caption=lambda wildcards: caption(MNIST.name, wildcards.figure),
        code=code([MNIST.module("figures")], "figure.py"),
    script:
        "../scripts/figure.py"
