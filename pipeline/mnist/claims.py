"""Claim 7 (docs/claims.md), judged on the MNIST metrics (one row per variant, seed and epoch).

The train-test gap is in percentage points. Part (a) takes the paper's model alone: the mean
over seeds of each seed's largest |train - test| gap over the epochs. Part (b) sets it beside a
baseline trained by the same loop without the convex structure, at matched training accuracy:
the level is the highest training accuracy that every run of the comparison reaches, and each
run's gap is interpolated (linearly in the epoch) at the point where its training accuracy
first reaches that level; per seed, the model's gap minus the baseline's. Intervals are
Student-t intervals of the mean over seeds (`stats.t_interval`: exact coverage for normal
per-seed values at any seed count; a percentile bootstrap over 3 seeds is only the range of the
seeds, about 75 %). When the metrics have a `part` column (MNIST run sets), each part is a
setting of the robustness grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.claims import Claim, Part, fmt, not_run, select
from pipeline.stats import t_interval

TEXT = "MNIST: train-test accuracy gap stays small at every epoch without explicit regularisation."


def gap_at_level(metrics: pd.DataFrame, level: float) -> float:
    """Gap (points) of one run where its training accuracy first reaches `level`, interpolated
    linearly between the two epochs around that point (the first epoch if it starts above)."""
    m = metrics.sort_values("epoch")
    acc = m["train_acc"].to_numpy(dtype=float)
    gap = 100 * (acc - m["test_acc"].to_numpy(dtype=float))
    hit = int(np.argmax(acc >= level - 1e-12))
    if hit == 0 or acc[hit] == acc[hit - 1]:
        return float(gap[hit])
    w = (level - acc[hit - 1]) / (acc[hit] - acc[hit - 1])
    return float(gap[hit - 1] + w * (gap[hit] - gap[hit - 1]))


def claim7(tables, setting: dict, th) -> list[Part]:
    df = select(tables["mnist/metrics"], setting)
    model, baseline = th["mnist_variant"], th["mnist_baseline"]
    ours = df[df["variant"].eq(model)]
    if ours.empty:
        return [not_run("a", "gap", f"no runs of the MNIST variant {model}")]
    per_seed = (
        ours.assign(gap=100 * (ours["train_acc"] - ours["test_acc"]).abs()).groupby("seed")["gap"].max()
    )
    stat_a = f"{model}: mean over seeds of the largest |train - test| accuracy gap over the epochs (points)"
    last = ours[ours["epoch"] == ours["epoch"].max()]
    acc_test, acc_train = fmt(100 * last["test_acc"].mean()), fmt(100 * last["train_acc"].mean())
    context = (
        f"{len(per_seed)} seeds, {int(ours['epoch'].max())} epochs; per seed "
        f"{', '.join(fmt(g) for g in per_seed)}; final test accuracy {acc_test}% (train {acc_train}%)"
    )
    if len(per_seed) < 2:
        parts = [not_run("a", stat_a, f"{context}: fewer than two seeds, no interval")]
    else:
        est, lo, hi = t_interval(per_seed.to_numpy(), th["level"])
        parts = [Part("a", stat_a, est, lo, hi, th["max_gap_points"], "<=", context)]
    base = df[df["variant"].eq(baseline)]
    seeds = sorted(set(ours["seed"]) & set(base["seed"]))
    stat_b = (
        f"mean over seeds of the gap of {model} minus the gap of {baseline} (points), at matched "
        "training accuracy (interpolated)"
    )
    if len(seeds) < 2:
        parts.append(not_run("b", stat_b, f"fewer than two seeds with runs of both {model} and {baseline}"))
        return parts
    runs = [g for _, g in pd.concat([ours, base]).groupby(["variant", "seed"]) if g["seed"].iloc[0] in seeds]
    level = min(float(g["train_acc"].max()) for g in runs)
    diff = np.array(
        [
            gap_at_level(ours[ours["seed"] == s], level) - gap_at_level(base[base["seed"] == s], level)
            for s in seeds
        ]
    )
    est, lo, hi = t_interval(diff, th["level"])
    parts.append(
        Part(
            "b",
            stat_b,
            est,
            lo,
            hi,
            0.0,
            "<",
            f"{len(seeds)} seeds, matched at training accuracy {fmt(100 * level)}%; per seed "
            f"{', '.join(fmt(d) for d in diff)}",
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
