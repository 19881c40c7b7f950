"""The edge study's aggregate step: `summary(tables)` (no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: per depth, regime and whether the theorem's hypotheses hold (scalar runs):
    runs, shares converged / diverged, GD steps compared and with a rise of phi, runs with a
    rise, and over the converged runs the medians of sharpness delta / 2 and sharpness / phi0."""
    runs = tables.get("runs", pd.DataFrame())
    keys = ["depth", "regime", "hypotheses"]
    if runs.empty:  # only the matrix networks or the maps were run
        return {"summary": pd.DataFrame(columns=keys)}
    conv = runs["status"] == "converged"
    d = runs.assign(
        converged=conv,
        diverged=runs["status"] == "diverged",
        rose=runs["phi_increases"] > 0,
        edge_converged=runs["final_edge_ratio"].where(conv),
        flow_converged=runs["final_flow_ratio"].where(conv),
    )
    g = d.groupby(keys, dropna=False)
    out = pd.DataFrame(
        {
            "runs": g.size(),
            "share_converged": g["converged"].mean(),
            "share_diverged": g["diverged"].mean(),
            "phi_comparisons": g["phi_comparisons"].sum(),
            "phi_increases": g["phi_increases"].sum(),
            "runs_with_rise": g["rose"].sum(),
            "median_final_edge_ratio": g["edge_converged"].median(),
            "median_final_flow_ratio": g["flow_converged"].median(),
        }
    )
    out["share_steps_rose"] = out["phi_increases"] / out["phi_comparisons"].replace(0, np.nan)
    return {"summary": out.reset_index()}
