# The report: every claim checked against the aggregated tables (results/report/claims.csv),
# then one self-contained HTML page (results/report/index.html) with the claims, every
# study's figures and captions, and the provenance of the run. Input paths come from the
# studies' rules.
from pipeline.config import without_runtime_keys
from pipeline.report import config_digest

# Figures of the claims themselves: name -> the report tables it reads.
REPORT_FIGURES = {"robustness": ["robustness"]}


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    report_claims,
    report_figure,
    report_html,


rule report_claims:
    input:
        unpack(claim_inputs),
    output:
        claims=report(
            "results/report/claims.csv",
            caption="../report/report_claims.rst",
            category="Claims",
            labels={"table": "claims"},
        ),
        markdown="results/report/claims.md",
        robustness="results/report/robustness.parquet",
    log:
        "results/logs/report/claims.log",
    benchmark:
        "results/benchmarks/report/claims.tsv"
    conda:
        ENV
    params:
        thresholds=canonical(config["report"]["claims"]),
    script:
        "../scripts/report_claims.py"


rule report_figure:
    input:
        unpack(
            lambda wildcards: {
                t: f"results/report/{t}.parquet"
                for t in REPORT_FIGURES[wildcards.figure]
            }
        ),
    output:
        report(
            "results/report/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Claims",
            labels={"figure": "{figure}"},
        ),
        expand("results/report/figures/{{figure}}.{fmt}", fmt=FIGURE_FORMATS),
    log:
        "results/logs/report/figure_{figure}.log",
    benchmark:
        "results/benchmarks/report/figure_{figure}.tsv"
    wildcard_constraints:
        figure="|".join(REPORT_FIGURES),
    conda:
        ENV
    params:
        figures="pipeline.claims_figures",
        settings=figure_settings("report"),
        caption=lambda wildcards: caption("report", wildcards.figure),
    script:
        "../scripts/figure.py"


rule report_html:
    input:
        claims=rules.report_claims.output.claims,
        captions=[
            os.path.relpath(CAPTIONS / f"{study}_{Path(png).stem}.rst")
            for study, pngs in report_figures().items()
            for png in pngs
        ],
        figures=[f for pngs in report_figures().values() for f in figure_files(pngs)],
        # every other final output, so the page is built last and sees every benchmark file
        targets=final_targets(report=False),
    output:
        report(
            "results/report/index.html",
            caption="../report/report_index.rst",
            category="Claims",
            labels={"table": "self-contained HTML report"},
        ),
    log:
        "results/logs/report/html.log",
    benchmark:
        "results/benchmarks/report/html.tsv"
    conda:
        ENV
    params:
        figures=report_figures(),
        enabled={
            "stability": bool(STABILITY_PARTS),
            "bias1d": BIAS1D["enabled"],
            "mnist": bool(MNIST_VARIANTS),
            "stepsize": bool(STEPSIZE_SHARDS),
            "report": True,
        },
        # the workflow's folder, where git tells the commit
        repo=workflow.basedir,
        benchmarks="results/benchmarks",
        # sha256 of the whole config, shown in the provenance section
        config_digest=config_digest(without_runtime_keys(config)),
    script:
        "../scripts/report_html.py"
