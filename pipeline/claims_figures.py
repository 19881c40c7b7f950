"""Figures of the claims: the robustness map (a pure function of the settings table: the verdict
of every claim at every setting of its robustness grid).

One panel per claim: every setting of its robustness grid is a cell coloured by the claim's
verdict there; the x axis is the setting key with the most values, the y axis lists the
combinations of the other keys.
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap

from pipeline.claims import VERDICTS
from pipeline.plotting import registry

FIGURES, figure = registry()
COLOURS = {
    "supported": "#1a7f37",
    "not supported": "#b42318",
    "inconclusive": "#e3a008",
    "not run": "#c4c8d0",
}


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@figure("robustness")
def robustness(tables: dict[str, pd.DataFrame], settings: dict):
    """Verdict of every claim at every setting of its robustness grid."""
    cells = tables["settings"]
    claims = sorted(cells["claim_id"].unique()) if len(cells) else []
    heights = []
    grids = []
    for claim in claims:
        c = cells[cells["claim_id"] == claim]
        parsed = [json.loads(s) for s in c["setting"]]
        keys = list(parsed[0])
        x_key = max(keys, key=lambda k: len({json.dumps(p[k]) for p in parsed}))
        rest = [k for k in keys if k != x_key]
        xs = sorted({p[x_key] for p in parsed}, key=lambda v: (isinstance(v, str), v))
        ys = sorted({tuple(p[k] for k in rest) for p in parsed}, key=str)
        grid = np.full((len(ys), len(xs)), np.nan)  # settings absent from the grid stay blank
        for p, verdict in zip(parsed, c["verdict"], strict=True):
            grid[ys.index(tuple(p[k] for k in rest)), xs.index(p[x_key])] = VERDICTS.index(verdict)
        grids.append((claim, x_key, rest, xs, ys, grid, c["verdict"]))
        heights.append(max(1.2, 0.22 * len(ys) + 0.8))
    if not grids:
        fig, ax = plt.subplots(figsize=(settings["panel_width"], 1.5))
        ax.text(0.5, 0.5, "no claim has a robustness grid in this run", ha="center", va="center")
        ax.axis("off")
        return fig
    width = settings["panel_width"] * 2
    fig, axes = plt.subplots(
        len(grids), 1, figsize=(width, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    cmap = ListedColormap([COLOURS[v] for v in VERDICTS])
    for ax, (claim, x_key, rest, xs, ys, grid, verdicts) in zip(axes[:, 0], grids, strict=True):
        ax.imshow(
            grid, cmap=cmap, vmin=-0.5, vmax=len(VERDICTS) - 0.5, aspect="auto", interpolation="nearest"
        )
        ax.set_xticks(range(len(xs)), [_label(x) for x in xs], fontsize="x-small")
        ax.set_yticks(
            range(len(ys)), [", ".join(_label(v) for v in y) or "-" for y in ys], fontsize="xx-small"
        )
        ax.set_xlabel(x_key, fontsize="small")
        ax.set_ylabel(", ".join(rest), fontsize="x-small")
        held = int((verdicts == "supported").sum())
        ax.set_title(f"claim {claim}: supported in {held} of {len(verdicts)} settings", fontsize="small")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[v]) for v in VERDICTS]
    fig.legend(handles, VERDICTS, loc="upper center", ncol=len(VERDICTS), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / sum(heights)))
    return fig
