"""Rule bias1d_figures: draw the study's figures from the aggregated tables."""

import pandas as pd

from pipeline import bias1d_plots
from pipeline.errors import run_script


def main(smk):
    t = {name: pd.read_parquet(path) for name, path in smk.input.items()}
    theme, fig = smk.params.figures, smk.params.figures["bias1d"]
    bias1d_plots.fit_figure(t["runs"], t["estimates"], t["points"], t["truth"], theme, fig, smk.output.fit)
    bias1d_plots.drift_figure(t["runs"], theme, fig, smk.output.drift)
    bias1d_plots.lipschitz_figure(t["runs"], theme, fig, smk.output.lipschitz)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
