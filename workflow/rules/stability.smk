# Stability sweeps (SPEC sections 1-2): shards (one study x one depth) -> one table per study
# -> figures. Each shard's params hold only the config it depends on (the engine settings
# and its study's block without the depth list), so changing a grid re-runs only its shards.
STABILITY = config["stability"]
STABILITY_STUDIES = [
    s
    for s in ("scalar", "depth", "single_vs_double")
    if STABILITY["enabled"] and STABILITY[s]["enabled"]
]
STABILITY_SUBBLOCKS = ("enabled", "scalar", "depth", "single_vs_double")


# Settings shared by the studies.
STABILITY_ENGINE = {k: v for k, v in STABILITY.items() if k not in STABILITY_SUBBLOCKS}


wildcard_constraints:
    study="scalar|depth|single_vs_double",
    depth=r"\d+",


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    stability_aggregate,
    stability_figure_phase,
    stability_figure_sharpness,
    stability_figure_depth,
    stability_figure_single_vs_double,


rule stability_shard:
    output:
        runs="results/stability/{study}/shards/L{depth}_runs.parquet",
        curves="results/stability/{study}/shards/L{depth}_curves.parquet",
    log:
        "results/logs/stability/shard_{study}_L{depth}.log",
    benchmark:
        "results/benchmarks/stability/shard_{study}_L{depth}.tsv"
    conda:
        ENV
    threads: 1
    params:
        engine=STABILITY_ENGINE,
        block=lambda wc: {
            k: v
            for k, v in STABILITY[wc.study].items()
            if k not in ("enabled", "depths")
        },
    script:
        "../scripts/stability_shard.py"


rule stability_aggregate:
    input:
        lambda wc: expand(
            "results/stability/{study}/shards/L{depth}_{table}.parquet",
            study=wc.study,
            depth=STABILITY[wc.study]["depths"],
            table=("runs", "curves"),
        ),
    output:
        runs="results/stability/{study}/runs.parquet",
        curves="results/stability/{study}/curves.parquet",
    log:
        "results/logs/stability/aggregate_{study}.log",
    benchmark:
        "results/benchmarks/stability/aggregate_{study}.tsv"
    conda:
        ENV
    script:
        "../scripts/stability_aggregate.py"


rule stability_figure_phase:
    input:
        runs="results/stability/scalar/runs.parquet",
    output:
        png=report(
            "results/stability/figures/phase_diagram.png",
            caption="../report/stability_phase_diagram.rst",
            category="Stability",
            labels={"study": "scalar", "figure": "phase diagram"},
        ),
        other=expand(
            "results/stability/figures/phase_diagram.{fmt}", fmt=FIGURE_FORMATS
        ),
    log:
        "results/logs/stability/figure_phase_diagram.log",
    benchmark:
        "results/benchmarks/stability/figure_phase_diagram.tsv"
    conda:
        ENV
    params:
        figures=figure_settings("stability"),
    script:
        "../scripts/stability_figure_phase.py"


rule stability_figure_sharpness:
    input:
        runs="results/stability/scalar/runs.parquet",
    output:
        png=report(
            "results/stability/figures/sharpness.png",
            caption="../report/stability_sharpness.rst",
            category="Stability",
            labels={"study": "scalar", "figure": "sharpness vs 2/delta"},
        ),
        other=expand("results/stability/figures/sharpness.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/stability/figure_sharpness.log",
    benchmark:
        "results/benchmarks/stability/figure_sharpness.tsv"
    conda:
        ENV
    params:
        figures=figure_settings("stability"),
    script:
        "../scripts/stability_figure_sharpness.py"


rule stability_figure_depth:
    input:
        runs="results/stability/depth/runs.parquet",
    output:
        png=report(
            "results/stability/figures/depth.png",
            caption="../report/stability_depth.rst",
            category="Stability",
            labels={"study": "depth", "figure": "final error vs depth"},
        ),
        other=expand("results/stability/figures/depth.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/stability/figure_depth.log",
    benchmark:
        "results/benchmarks/stability/figure_depth.tsv"
    conda:
        ENV
    params:
        figures=figure_settings("stability"),
    script:
        "../scripts/stability_figure_depth.py"


rule stability_figure_single_vs_double:
    input:
        runs="results/stability/single_vs_double/runs.parquet",
        curves="results/stability/single_vs_double/curves.parquet",
    output:
        png=report(
            "results/stability/figures/single_vs_double.png",
            caption="../report/stability_single_vs_double.rst",
            category="Stability",
            labels={"study": "single_vs_double", "figure": "single vs double"},
        ),
        other=expand(
            "results/stability/figures/single_vs_double.{fmt}", fmt=FIGURE_FORMATS
        ),
    log:
        "results/logs/stability/figure_single_vs_double.log",
    benchmark:
        "results/benchmarks/stability/figure_single_vs_double.tsv"
    conda:
        ENV
    params:
        figures=figure_settings("stability"),
    script:
        "../scripts/stability_figure_single_vs_double.py"


STABILITY_FIGURE_STUDY = {
    "phase_diagram": "scalar",
    "sharpness": "scalar",
    "depth": "depth",
    "single_vs_double": "single_vs_double",
}
for _study in STABILITY_STUDIES:
    TARGETS.extend(
        expand(
            "results/stability/{study}/{table}.parquet",
            study=_study,
            table=("runs", "curves"),
        )
    )
FIGURES["stability"] = [
    f"results/stability/figures/{name}.png"
    for name, _study in STABILITY_FIGURE_STUDY.items()
    if _study in STABILITY_STUDIES
]
TARGETS.extend(FIGURES["stability"])
TARGETS.extend(
    f"{png[:-4]}.{fmt}" for png in FIGURES["stability"] for fmt in FIGURE_FORMATS
)
