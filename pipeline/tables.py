"""Helpers shared by the studies' tables: curve sampling, shard concatenation, writing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd


def log_steps(iterations: int, points: int) -> np.ndarray:
    """0, then about `points` log-spaced iterations up to `iterations` (distinct integers)."""
    steps = np.unique(np.round(np.geomspace(1, max(iterations, 1), max(points, 2))).astype(int))
    return np.concatenate([[0], steps[steps <= iterations]])


def concat_tables(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One table from Parquet files with the same columns, in the order given."""
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def write_tables(tables: Mapping[str, pd.DataFrame], paths: Mapping[str, str | Path]) -> None:
    """Write `tables[name]` to `paths[name]` for every name of `paths`, as .parquet or .csv."""
    for name, path in paths.items():
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            tables[name].to_csv(path, index=False)
        else:
            tables[name].to_parquet(path, index=False)
