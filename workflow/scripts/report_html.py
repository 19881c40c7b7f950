"""Rule report_html: the self-contained report page (claims, figures, provenance) and claims.md
(what ran and the claims as a Markdown table: the README's results section)."""

import os
from pathlib import Path

import pandas as pd

from pipeline.claims import claims_markdown
from pipeline.errors import run_script
from pipeline.report import (
    build_sections,
    provenance,
    read_benchmarks,
    render_html,
    results_markdown,
    run_times,
)


def main(smk):
    p = smk.params
    claims = pd.read_csv(smk.input.claims)
    benchmarks = read_benchmarks(p.benchmarks)
    times = run_times(benchmarks)
    devices = claims["training_devices"].astype(str).iloc[0].split(", ") if len(claims) else []
    prov = provenance(
        Path(smk.scriptdir).parents[1],
        [f for f in os.environ.get("PIPELINE_CONFIG_FILES", "").split(os.pathsep) if f],
        os.environ.get("PIPELINE_CONFIG_DIGEST", "unknown"),
        devices,
    )
    wall = (
        f"{times['elapsed_seconds']:.0f} s from the first job's start to the last job's end "
        f"({times['jobs_seconds']:.0f} s summed over jobs)"
    )
    page = render_html(
        claims=claims,
        sections=build_sections(p.figures, p.enabled, smk.input.captions),
        provenance={**prov, "wall time": wall},
        benchmarks=benchmarks,
    )
    Path(smk.output.html).write_text(page)
    Path(smk.output.markdown).write_text(results_markdown(prov, times, claims_markdown(claims)))


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
