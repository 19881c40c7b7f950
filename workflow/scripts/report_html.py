"""Rule report_html: the self-contained report page (claims, figures, provenance)."""

from pathlib import Path

import pandas as pd

from pipeline.errors import run_script
from pipeline.report import build_sections, provenance, read_benchmarks, render_html


def main(smk):
    p = smk.params
    page = render_html(
        claims=pd.read_csv(smk.input.claims),
        sections=build_sections(p.figures, p.enabled, smk.input.captions),
        provenance=provenance(p.repo, p.config_digest),
        benchmarks=read_benchmarks(p.benchmarks),
    )
    Path(smk.output[0]).write_text(page)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
