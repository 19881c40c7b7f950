"""The stability study's aggregate step: `summary(tables)` of one experiment's runs (no torch)."""

from __future__ import annotations

import pandas as pd

from pipeline.linear.status import STATUSES


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: share of each status per depth, init, network and step grid of one part's runs."""
    runs = tables["runs"]
    keys = [k for k in ("depth", "init", "network", "regime", "target", "delta_grid") if k in runs]
    counts = runs.groupby(keys + ["status"], dropna=False).size().unstack("status", fill_value=0)
    counts = counts.reindex(columns=list(STATUSES), fill_value=0)
    out = counts.div(counts.sum(axis=1), axis=0).add_prefix("share_")
    out["runs"] = counts.sum(axis=1)
    return {"summary": out.reset_index()}
