# The report: every claim checked against the aggregated tables (results/report/claims.csv and
# settings.parquet, the verdict at every setting of each claim's robustness grid), then one
# self-contained HTML page (results/report/index.html) with the claims, every study's figures
# and captions and the provenance of the run, and the claims as Markdown (claims.md, what the
# README's results section is made from). Input paths come from the registry.
from pipeline.config import without_runtime_keys
from pipeline.report import config_digest

# The provenance names the config files in the order they were merged (config.yaml, then those
# given with --configfile): through the environment, not params, so that a file that changes no
# number re-runs nothing (the report jobs run where snakemake runs).
_GIVEN = [str(f) for f in workflow.overwrite_configfiles]
os.environ.update(
    PIPELINE_CONFIG_FILES=os.pathsep.join(
        os.path.relpath(f, workflow.basedir)
        for f in [
            *(f for f in map(str, workflow.configfiles) if f not in _GIVEN),
            *_GIVEN,
        ]
    ),
    # ... and the sha256 of the merged config without its runtime keys (what the numbers depend
    # on): claims.csv states the config it was computed under; a figure setting re-draws the page.
    PIPELINE_CONFIG_DIGEST=config_digest(without_runtime_keys(config)),
)
# Every study's claims run in report_claims.
CLAIMS_CODE = [s.module("claims") for s in studies.STUDIES]


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
        settings="results/report/settings.parquet",
    log:
        "results/logs/report/claims.log",
    benchmark:
        "results/benchmarks/report/claims.tsv"
    conda:
        ENV
    params:
        thresholds=canonical(config["report"]["claims"]),
        benchmarks=benchmark_files(figures=False),
        code=code(
            ["pipeline.claims", "pipeline.report", *CLAIMS_CODE], "report_claims.py"
        ),
    script:
        "../scripts/report_claims.py"


rule report_figure:
    input:
        unpack(
            lambda wildcards: {
                t: f"results/report/{t}.parquet"
                for t in studies.REPORT_FIGURES[wildcards.figure]
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
        figure="|".join(studies.REPORT_FIGURES),
    conda:
        ENV
    params:
        figures="pipeline.claims_figures",
        settings=figure_settings("report"),
        caption=lambda wildcards: caption("report", wildcards.figure),
        code=code(["pipeline.claims_figures"], "figure.py"),
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
        html=report(
            "results/report/index.html",
            caption="../report/report_index.rst",
            category="Claims",
            labels={"table": "self-contained HTML report"},
        ),
        markdown="results/report/claims.md",
    log:
        "results/logs/report/html.log",
    benchmark:
        "results/benchmarks/report/html.tsv"
    conda:
        ENV
    params:
        figures=report_figures(),
        enabled={
            **{s.name: s.enabled(config) for s in studies.STUDIES},
            "report": True,
        },
        benchmarks=benchmark_files()
        + [
            "results/benchmarks/report/claims.tsv",
            *[
                f"results/benchmarks/report/figure_{f}.tsv"
                for f in studies.REPORT_FIGURES
            ],
        ],
        code=code(["pipeline.report"], "report_html.py"),
    script:
        "../scripts/report_html.py"
