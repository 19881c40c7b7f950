"""Rule mnist_figures: accuracy per epoch, train-test gap, bias vs weight drift."""

import pandas as pd

from pipeline.errors import run_script
from pipeline.mnist_figures import accuracy_figure, drift_figure, gap_figure
from pipeline.plotting import apply_theme, save


def main(smk):
    figs = smk.params.figures
    apply_theme(figs)
    metrics = pd.read_parquet(smk.input.metrics)
    save(accuracy_figure(metrics, figs), smk.output.accuracy, figs)
    save(gap_figure(metrics, figs), smk.output.gap, figs)
    save(drift_figure(pd.read_parquet(smk.input.drift), figs), smk.output.drift, figs)


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
