# The report: every claim checked against the aggregated tables (results/report/claims.csv),
# then one self-contained HTML page (results/report/index.html) with the claims, every
# study's figures and captions, and the provenance of the run. Input paths come from the
# studies' rules.
from pipeline.config import without_runtime_keys
from pipeline.report import config_digest


def claim_inputs(wildcards):
    """The aggregated tables the claims read, by name, for the enabled studies."""
    tables = {
        part: expand(rules.stability_aggregate.output.runs, part=part)[0]
        for part in STABILITY_PARTS
    }
    if BIAS1D["enabled"]:
        tables["bias1d"] = rules.bias1d_aggregate.output.runs
    variant = config["report"]["claims"]["mnist_variant"]
    if variant in MNIST_VARIANTS:
        tables["mnist"] = expand(rules.mnist_aggregate.output.metrics, variant=variant)[0]
    if stepsize_shards():
        tables["stepsize"] = rules.stepsize_aggregate.output.runs
    return tables


def report_figures():
    return {study: out["figures"] for study, out in study_outputs().items()}


# Cheap jobs run where snakemake runs, also under a cluster executor.
localrules:
    report_claims,
    report_html,


rule report_claims:
    input:
        unpack(claim_inputs),
    output:
        report(
            "results/report/claims.csv",
            caption="../report/report_claims.rst",
            category="Claims",
            labels={"table": "claims"},
        ),
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


rule report_html:
    input:
        claims=rules.report_claims.output[0],
        captions=[
            os.path.relpath(CAPTIONS / f"{study}_{Path(png).stem}.rst")
            for study, pngs in report_figures().items()
            for png in pngs
        ],
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
            "stepsize": bool(stepsize_shards()),
        },
        # the workflow's folder, where git tells the commit
        repo=workflow.basedir,
        benchmarks="results/benchmarks",
        # sha256 of the whole config, shown in the provenance section
        config_digest=config_digest(without_runtime_keys(config)),
    script:
        "../scripts/report_html.py"
