"""Shared figure helpers: one theme from the config's figures block, and saving in every format."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402


def apply_theme(figures: dict) -> None:
    """Set the seaborn theme from the config's `figures` block."""
    sns.set_theme(style=figures["style"], context=figures["context"], palette=figures["palette"])


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
        fig.savefig(path, dpi=figures["dpi"], bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written
