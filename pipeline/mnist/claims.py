"""Claim 7 (docs/claims.md), judged on the MNIST metrics (one row per variant, seed and epoch).

The train-test gap is in percentage points. Part (a) takes the paper's model alone; part (b)
sets it beside a baseline trained by the same loop without the convex structure, at matched
training accuracy: for each seed, the gap of each model at the first epoch where its
training accuracy reaches the highest level that every model of the comparison reaches.
Intervals resample seeds. When the metrics have a `part` column (MNIST run sets), each part
is a setting of the robustness grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.claims import Claim, Part, fmt, not_run, select
from pipeline.stats import bootstrap_median

TEXT = "MNIST: train-test accuracy gap stays small at every epoch without explicit regularisation."


def _gap_at(metrics: pd.DataFrame, level: float) -> float:
    """Gap (points) of one run at the first epoch where its training accuracy reaches `level`."""
    m = metrics.sort_values("epoch")
    reached = m[m["train_acc"] >= level - 1e-12]
    row = reached.iloc[0]
    return 100 * float(row["train_acc"] - row["test_acc"])


def claim7(tables, setting: dict, th) -> list[Part]:
    df = select(tables["mnist/metrics"], setting)
    model, baseline = th["mnist_variant"], th["mnist_baseline"]
    boot = {"n_boot": th["bootstrap"], "level": th["level"]}
    ours = df[df["variant"].eq(model)]
    if ours.empty:
        return [not_run("a", "gap", f"no runs of the MNIST variant {model}")]
    per_seed = (
        ours.assign(gap=100 * (ours["train_acc"] - ours["test_acc"]).abs()).groupby("seed")["gap"].max()
    )
    est, lo, hi = bootstrap_median(
        per_seed.to_numpy(), per_seed.index.to_numpy(), key=("claim7a", *setting.values()), **boot
    )
    last = ours[ours["epoch"] == ours["epoch"].max()]
    parts = [
        Part(
            "a",
            f"{model}: median over seeds of the largest |train - test| accuracy gap over the epochs (points)",
            est,
            lo,
            hi,
            th["max_gap_points"],
            "<=",
            f"{len(per_seed)} seeds, {int(ours['epoch'].max())} epochs; final test accuracy "
            f"{fmt(100 * last['test_acc'].mean())}% (train {fmt(100 * last['train_acc'].mean())}%)",
        )
    ]
    base = df[df["variant"].eq(baseline)]
    seeds = sorted(set(ours["seed"]) & set(base["seed"]))
    if not seeds:
        parts.append(not_run("b", f"{model} vs {baseline}", f"no {baseline} runs with the same seeds"))
        return parts
    runs = [g for _, g in pd.concat([ours, base]).groupby(["variant", "seed"]) if g["seed"].iloc[0] in seeds]
    level = min(float(g["train_acc"].max()) for g in runs)
    diff = np.array(
        [_gap_at(ours[ours["seed"] == s], level) - _gap_at(base[base["seed"] == s], level) for s in seeds]
    )
    est, lo, hi = bootstrap_median(diff, np.array(seeds), key=("claim7b", *setting.values()), **boot)
    parts.append(
        Part(
            "b",
            f"median over seeds of the gap of {model} minus the gap of {baseline} (points), at matched "
            "training accuracy",
            est,
            lo,
            hi,
            0.0,
            "<",
            f"{len(seeds)} seeds, matched at training accuracy {fmt(100 * level)}%",
        )
    )
    return parts


def _parts(tables, th) -> list[dict]:
    df = tables["mnist/metrics"]
    return [{"part": p} for p in sorted(df["part"].unique())] if "part" in df else []


def _primary(tables, th) -> dict:
    df = tables["mnist/metrics"]
    return {"part": th["mnist_part"]} if "part" in df and th["mnist_part"] in set(df["part"]) else {}


CLAIMS = [Claim(7, TEXT, ("mnist/metrics",), claim7, _primary, _parts)]
