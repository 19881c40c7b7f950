"""Rule <study>_figure: draw one figure ({figure} wildcard) of a figures module from its tables."""

from importlib import import_module

from pipeline.errors import run_script
from pipeline.plotting import apply_theme, save
from pipeline.tables import concat_tables


def main(smk):
    figures = import_module(smk.params.figures).FIGURES
    settings = smk.params.settings
    tables = {
        name: concat_tables([paths] if isinstance(paths, str) else paths) for name, paths in smk.input.items()
    }
    apply_theme(settings)
    save(figures[smk.wildcards.figure](tables, settings), smk.output, settings["dpi"])


run_script(main, snakemake)  # noqa: F821 - injected by snakemake
