"""Claim 8 (ours, beyond the paper; docs/claims.md), judged on the step-size study's runs.

The set judged: the instances (a target, start and seed at one depth) where some fixed step of
the grid converges. Part (a): the share of them on which the curvature-controlled step
converges; part (b): the median, over those where it converges, of its combined cost divided
by the cost of the instance's best fixed step (the cheapest converged one). Intervals resample
seeds (a seed is one replicate of the random starts and, for the matrix problems, one random
target per family). The headline pools every problem and depth; robustness counts the
(problem, network, depth) cells.
"""

from __future__ import annotations

import json

import numpy as np

from pipeline.claims import Claim, Part, fmt, interval, not_run, select
from pipeline.stats import bootstrap_median, bootstrap_share

TEXT = (
    "Ours, beyond the paper: a curvature-controlled step delta_t = sigma 2 / lambda_max(theta_t) "
    "converges wherever some fixed step converges, at a median cost within 2x of the best fixed "
    "step in hindsight (scalar and matrix deep linear networks, every depth)."
)
COLUMNS = ("rule", "status", "reachable", "cost_ratio", "seed", "problem", "network", "depth")


def _boot(th, part: str, setting: dict) -> dict:
    key = ("claim8", part, json.dumps(setting, sort_keys=True, default=str))
    return {"n_boot": th.get("bootstrap", 2000), "level": th.get("level", 0.95), "key": key}


def evaluate(tables, setting: dict, th) -> list[Part]:
    runs = tables["stepsize/runs"]
    a_stat = "share of reachable instances where the curvature step converges"
    b_stat = "median cost ratio, curvature step / best fixed step"
    missing = [c for c in COLUMNS if c not in runs]
    if missing:
        why = f"the stepsize runs table lacks {', '.join(missing)}"
        return [not_run("a", a_stat, why), not_run("b", b_stat, why)]
    curv = select(runs[runs["rule"] == "curvature"], setting)
    reach = curv[curv["reachable"].astype(bool)]
    if reach.empty:
        why = "no instance where a fixed step converges (or no curvature run) in this setting"
        return [not_run("a", a_stat, why), not_run("b", b_stat, why)]
    if reach["seed"].nunique() < 2:
        why = "fewer than two seeds: no interval"
        return [not_run("a", a_stat, why), not_run("b", b_stat, why)]
    ok = (reach["status"] == "converged").to_numpy()
    est, lo, hi = bootstrap_share(ok, reach["seed"].to_numpy(), **_boot(th, "a", setting))
    beyond = curv[~curv["reachable"].astype(bool)]
    extra = int((beyond["status"] == "converged").sum())
    fails = reach.loc[~ok, "status"].value_counts()
    part_a = Part(
        "a",
        a_stat,
        est,
        lo,
        hi,
        th["stepsize_success_min"],
        ">=",
        f"converged on {int(ok.sum())} of {len(reach)} instances where some fixed step converged "
        f"(share {interval(est, lo, hi)}; failures: "
        f"{', '.join(f'{k} {v}' for k, v in fails.items()) or 'none'}); it also converged on "
        f"{extra} of {len(beyond)} instances where no fixed step of the grid did",
    )
    conv = reach[ok]
    ratio = conv["cost_ratio"].to_numpy(dtype=float)
    if not np.isfinite(ratio).any():
        return [part_a, not_run("b", b_stat, "the curvature step converged on no reachable instance")]
    est, lo, hi = bootstrap_median(ratio, conv["seed"].to_numpy(), **_boot(th, "b", setting))
    limit = th["stepsize_cost_ratio_max"]
    part_b = Part(
        "b",
        b_stat,
        est,
        lo,
        hi,
        limit,
        "<=",
        f"median cost ratio {interval(est, lo, hi)} over {len(ratio)} converged instances; "
        f"ratio <= {fmt(limit)} on {int((ratio <= limit).sum())}, quartiles "
        f"{fmt(np.nanquantile(ratio, 0.25))}-{fmt(np.nanquantile(ratio, 0.75))}",
    )
    return [part_a, part_b]


def primary(tables, th) -> dict:
    """Every problem and depth pooled."""
    return {}


def grid(tables, th) -> list[dict]:
    """One setting per (problem, network, depth) cell that has runs."""
    runs = tables["stepsize/runs"]
    if any(c not in runs for c in ("problem", "network", "depth")):
        return []
    keys = ["problem", "network", "depth"]
    cells = runs[keys].drop_duplicates().sort_values(keys)
    # the same keys in every setting (the scalar network's rows have network = single)
    return [
        {"problem": problem, "network": network, "depth": int(depth)}
        for problem, network, depth in cells.itertuples(index=False)
    ]


CLAIMS = [Claim(8, TEXT, tables=("stepsize/runs",), evaluate=evaluate, primary=primary, grid=grid)]
