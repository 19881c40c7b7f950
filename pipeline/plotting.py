"""Shared figure helpers: one theme from the config's figures block, and saving in every format."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

# No creation date in the files, so that re-drawing the same tables gives the same bytes.
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def apply_theme(figures: dict) -> None:
    """Set the seaborn theme from the config's `figures` block.

    Also seeds numpy's global generator, which seaborn's strip-plot jitter draws from, so the
    same tables give the same figure files.
    """
    sns.set_theme(style=figures["style"], context=figures["context"], palette=figures["palette"])
    np.random.seed(0)


def panel_size(figures: dict, ncols: int = 1, nrows: int = 1) -> tuple[float, float]:
    return figures["panel_width"] * ncols, figures["panel_height"] * nrows


def save(fig, png_path: str | Path, figures: dict) -> list[Path]:
    """Write `fig` as `png_path` and as every other format in `figures["formats"]`.

    Files are written next to each other with the same stem; returns their paths.
    """
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in dict.fromkeys(["png", *figures["formats"]]):
        path = png_path.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=figures["dpi"], bbox_inches="tight", metadata=_NO_DATE.get(fmt))
        written.append(path)
    plt.close(fig)
    return written
