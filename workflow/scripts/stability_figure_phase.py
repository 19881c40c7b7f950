"""Rule stability_figure_phase: draw the figure from the aggregated tables."""

import pandas as pd

from pipeline.errors import run_script
from pipeline.stability_figures import figure_phase_diagram


def main(smk):
    tables = [pd.read_parquet(p) for p in (smk.input.runs,)]
    figure_phase_diagram(*tables, smk.output.png, smk.params.figures)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
