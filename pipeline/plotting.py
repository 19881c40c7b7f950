"""Shared figure helpers: the registry each study's figures module fills, the theme, saving.

A study's `figures.py` holds pure functions `(tables, settings) -> Figure`, registered by name
with the decorator from `registry()`. The figure rule's script looks the function up by the
`{figure}` wildcard, applies the theme, calls it and saves the figure in every format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

# No creation date in the files, so that re-drawing the same tables gives the same bytes.
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def registry() -> tuple[dict[str, Callable], Callable]:
    """A figure registry `{name: function}` and the decorator `@figure(name)` that fills it."""
    figures: dict[str, Callable] = {}

    def figure(name: str):
        def register(fn: Callable) -> Callable:
            figures[name] = fn
            return fn

        return register

    return figures, figure


def apply_theme(settings: dict) -> None:
    """Set the seaborn theme from the figure settings (style, context, palette).

    Also seeds numpy's global generator, which seaborn's strip-plot jitter draws from, so the
    same tables give the same figure files.
    """
    sns.set_theme(style=settings["style"], context=settings["context"], palette=settings["palette"])
    np.random.seed(0)


def panel_size(settings: dict, ncols: int = 1, nrows: int = 1) -> tuple[float, float]:
    return settings["panel_width"] * ncols, settings["panel_height"] * nrows


def save(fig, paths: Sequence[str | Path], dpi: int) -> None:
    """Write `fig` to each path (the format from its suffix), then close it."""
    for path in map(Path, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = path.suffix[1:]
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=_NO_DATE.get(fmt))
    plt.close(fig)
