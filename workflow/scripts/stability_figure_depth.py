"""Rule stability_figure_depth: draw the figure from the aggregated tables."""

import pandas as pd

from pipeline.errors import run_script
from pipeline.stability_figures import figure_depth


def main(smk):
    tables = [pd.read_parquet(p) for p in (smk.input.runs,)]
    figure_depth(*tables, smk.output.png, smk.params.figures)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
