"""The step-size study's aggregate step: `summary(tables)` (no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: per problem, network, depth, start, rule, setting (grid, curvature, published),
    refresh interval and step factor: runs, reachable instances,
    success rate among them, shares of converged and diverged runs, and over the converged runs
    the median cost and the median cost ratio to the best fixed step."""
    runs = tables.get("runs", pd.DataFrame())
    keys = ["problem", "network", "depth", "init", "rule", "setting", "refresh_every", "delta_factor"]
    if runs.empty:  # only the basin maps were run
        return {"summary": pd.DataFrame(columns=keys)}
    d = runs.assign(
        converged=runs["status"] == "converged",
        diverged=runs["status"] == "diverged",
        ok_reach=(runs["status"] == "converged") & runs["reachable"],
        cost_converged=runs["cost"].where(runs["status"] == "converged"),
    )
    g = d.groupby(keys, dropna=False)
    out = pd.DataFrame(
        {
            "runs": g.size(),
            "reachable": g["reachable"].sum(),
            "share_converged": g["converged"].mean(),
            "share_diverged": g["diverged"].mean(),
            "success_reachable": g["ok_reach"].sum() / g["reachable"].sum().replace(0, np.nan),
            "median_cost": g["cost_converged"].median(),
            "median_cost_ratio": g["cost_ratio"].median(),
        }
    )
    return {"summary": out.reset_index()}
