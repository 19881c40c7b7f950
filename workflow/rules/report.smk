# The report: every claim of SPEC section 6 checked against the aggregated tables
# (results/report/claims.csv), then one self-contained HTML page (results/report/index.html)
# with the claims, every study's figures and captions, and the provenance of the run.
# Included last, so TARGETS and FIGURES hold every other study's outputs.
from pipeline.claims import claim_table_paths, study_enabled
from pipeline.report import STUDY_TITLES, caption_files, config_digest

REPORT_CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    report_claims,
    report_html,


rule report_claims:
    input:
        # the aggregated tables of the enabled studies, by name (see claim_table_paths)
        unpack(lambda wildcards: claim_table_paths(config)),
    output:
        report(
            "results/report/claims.csv",
            caption="../report/report_claims.rst",
            category="Claims",
            labels={"table": "claims of SPEC section 6"},
        ),
    log:
        "results/logs/report/claims.log",
    benchmark:
        "results/benchmarks/report/claims.tsv"
    conda:
        ENV
    params:
        thresholds=config["report"]["claims"],
    script:
        "../scripts/report_claims.py"


rule report_html:
    input:
        claims=rules.report_claims.output[0],
        figures=[png for pngs in FIGURES.values() for png in pngs],
        # relative to the working directory, like every other path of the workflow
        captions=[os.path.relpath(p) for p in caption_files(FIGURES, REPORT_CAPTIONS)],
        # every other final output, so the page is built last and sees every benchmark file
        targets=list(TARGETS),
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
        figures={study: list(pngs) for study, pngs in FIGURES.items()},
        enabled={study: study_enabled(config, study) for study in STUDY_TITLES},
        # the workflow's folder, where git tells the commit
        repo=workflow.basedir,
        benchmarks="results/benchmarks",
        # sha256 of the whole config, shown in the provenance section
        config_digest=config_digest(config),
    script:
        "../scripts/report_html.py"


if config["report"]["enabled"]:
    TARGETS.extend([*rules.report_claims.output, *rules.report_html.output])
