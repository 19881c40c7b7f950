"""Claim 8 (ours, beyond the paper; docs/claims.md), judged on the step-size study's runs.

The rule judged is the one stated, `delta_t = sigma 2 / lambda_max(theta_t)` with lambda_max
recomputed at every iterate (`refresh_every` = 1, the headline); the lagged variants (refresh
every k > 1 iterations) are robustness settings beside the (problem, network, depth) cells.
The set judged: the instances (a target, start and seed at one depth) where some fixed step of
the grid converges. Part (a): the share of them on which the curvature step converges. Parts
(b) and (c) take the instances that are not trivial (the best fixed step in hindsight needs at
least `claim8_min_best_fixed_grads` gradient evaluations): (b) the median, over those where
the curvature step converges, of its combined cost over the best fixed step's in hindsight;
(c) the share of them where it costs no more than `claim8_prior_ratio_max` times the a-priori
fixed step (`stepsize.a_priori_factor`; a run that does not converge costs +inf), which must
be at least 1/2: the median ratio is at most that bound. The baselines at their published
defaults (AdGD, Armijo, Polyak) are measured on the same instances, in the evidence.
Intervals resample seeds (a seed is one replicate of the random starts and, for the matrix
problems, one random target per family).
"""

from __future__ import annotations

import json

import numpy as np

from pipeline.claims import Claim, Part, fmt, not_run, select
from pipeline.stats import bootstrap_median, bootstrap_share

TEXT = (
    "Ours, beyond the paper: a curvature-controlled step delta_t = sigma 2 / lambda_max(theta_t) "
    "converges wherever some fixed step converges, at a median cost within 2x of the best fixed "
    "step in hindsight (scalar and matrix deep linear networks, every depth)."
)
COLUMNS = ("rule", "setting", "refresh_every", "status", "reachable", "cost_ratio", "oracle_grads",
           "prior_ratio", "prior_cost", "peak_loss", "start_loss", "seed", "instance", "problem", "network",
           "depth")  # fmt: skip
PARTS = {
    "a": "share of reachable instances where the curvature step converges",
    "b": "median cost ratio, curvature step / best fixed step in hindsight (non-trivial instances)",
    "c": "share of non-trivial instances where the curvature step is no dearer than the a-priori fixed step",
}


def _boot(th, part: str, setting: dict) -> dict:
    key = ("claim8", part, json.dumps(setting, sort_keys=True, default=str))
    return {"n_boot": th.get("bootstrap", 2000), "level": th.get("level", 0.95), "key": key}


def _baselines(runs, instances, th) -> str:
    """The published-default baselines on the instances judged: converged share, median cost
    ratio to the best fixed step in hindsight."""
    pub = runs[(runs["setting"] == "published") & runs["instance"].isin(instances)]
    lines = []
    for rule, g in pub.groupby("rule", sort=True):
        ok = g["status"] == "converged"
        lines.append(
            f"{rule} {int(ok.sum())}/{len(g)} converged, median ratio {fmt(g.loc[ok, 'cost_ratio'].median())}"
        )
    return "; published defaults on the same instances: " + ("; ".join(lines) or "none run")


def evaluate(tables, setting: dict, th) -> list[Part]:
    runs = tables["stepsize/runs"]
    missing = [c for c in COLUMNS if c not in runs]
    if missing:
        why = f"the stepsize runs table lacks {', '.join(missing)}"
        return [not_run(p, s, why) for p, s in PARTS.items()]
    cells = {k: v for k, v in setting.items() if k != "refresh_every" and v not in ("all", 0)}
    cell = select(runs, cells)
    curv = select(cell[cell["rule"] == "curvature"], {"refresh_every": setting.get("refresh_every", 1)})
    reach = curv[curv["reachable"].astype(bool)]
    if reach.empty:
        why = "no instance where a fixed step converges (or no curvature run) in this setting"
        return [not_run(p, s, why) for p, s in PARTS.items()]
    if reach["seed"].nunique() < 2:
        why = "fewer than two seeds: no interval"
        return [not_run(p, s, why) for p, s in PARTS.items()]
    ok = (reach["status"] == "converged").to_numpy()
    est, lo, hi = bootstrap_share(ok, reach["seed"].to_numpy(), **_boot(th, "a", setting))
    beyond = curv[~curv["reachable"].astype(bool)]
    extra = int((beyond["status"] == "converged").sum())
    fails = reach.loc[~ok, "status"].value_counts()
    peak = reach["peak_loss"] / reach["start_loss"]
    part_a = Part(
        "a",
        PARTS["a"],
        est,
        lo,
        hi,
        th["stepsize_success_min"],
        ">=",
        f"converged on {int(ok.sum())} of {len(reach)} instances where some fixed step converged "
        f"(failures: {', '.join(f'{k} {v}' for k, v in fails.items()) or 'none'}); it also converged on "
        f"{extra} of {len(beyond)} instances where no fixed step of the grid did; peak loss / start "
        f"loss: median {fmt(peak.median())}, max {fmt(peak.max())}",
    )
    hard = reach[reach["oracle_grads"] >= th["claim8_min_best_fixed_grads"]]
    cut = (
        f"{len(hard)} of {len(reach)} reachable instances need >= {th['claim8_min_best_fixed_grads']} "
        "gradient evaluations at the best fixed step"
    )
    if hard["seed"].nunique() < 2:
        why = f"{cut}: fewer than two seeds among them"
        return [part_a, not_run("b", PARTS["b"], why), not_run("c", PARTS["c"], why)]
    conv = hard[hard["status"] == "converged"]
    ratio = conv["cost_ratio"].to_numpy(dtype=float)
    limit = th["stepsize_cost_ratio_max"]
    if len(ratio) == 0 or conv["seed"].nunique() < 2:
        part_b = not_run("b", PARTS["b"], f"{cut}; the curvature step converged on too few of them")
    else:
        est, lo, hi = bootstrap_median(ratio, conv["seed"].to_numpy(), **_boot(th, "b", setting))
        part_b = Part(
            "b",
            PARTS["b"],
            est,
            lo,
            hi,
            limit,
            "<=",
            f"{cut}; over the {len(ratio)} where it converged: ratio <= {fmt(limit)} on "
            f"{int((ratio <= limit).sum())}, quartiles {fmt(np.quantile(ratio, 0.25))}-"
            f"{fmt(np.quantile(ratio, 0.75))}" + _baselines(cell, set(hard["instance"]), th),
        )
    bound = th["claim8_prior_ratio_max"]
    cheap = hard["prior_ratio"].to_numpy(dtype=float) <= bound
    est, lo, hi = bootstrap_share(cheap, hard["seed"].to_numpy(), **_boot(th, "c", setting))
    prior_failed = int((np.isinf(hard["prior_cost"]) & (hard["status"] == "converged")).sum())
    part_c = Part(
        "c",
        PARTS["c"],
        est,
        lo,
        hi,
        0.5,
        ">=",
        f"cost ratio to the a-priori fixed step <= {fmt(bound)} on {int(cheap.sum())} of {len(hard)} "
        f"non-trivial instances (a share >= 1/2: the median ratio is <= {fmt(bound)}); median ratio "
        f"{fmt(float(np.median(hard['prior_ratio'])))}; the a-priori step failed where the curvature "
        f"step converged on {prior_failed}",
    )
    return [part_a, part_b, part_c]


def primary(tables, th) -> dict:
    """Every problem and depth pooled, the rule as stated (lambda_max at every iterate)."""
    return {"refresh_every": 1}


def grid(tables, th) -> list[dict]:
    """One setting per (problem, network, depth) cell that has runs, and one per lagged refresh
    interval (every cell pooled)."""
    runs = tables["stepsize/runs"]
    if any(c not in runs for c in ("problem", "network", "depth", "refresh_every")):
        return []
    keys = ["problem", "network", "depth"]
    cells = runs[keys].drop_duplicates().sort_values(keys)
    # the same keys in every setting (the scalar network's rows have network = single)
    out = [
        {"problem": problem, "network": network, "depth": int(depth), "refresh_every": 1}
        for problem, network, depth in cells.itertuples(index=False)
    ]
    lagged = sorted(int(k) for k in runs.loc[runs["rule"] == "curvature", "refresh_every"].unique() if k > 1)
    return out + [{"problem": "all", "network": "all", "depth": 0, "refresh_every": k} for k in lagged]


CLAIMS = [Claim(8, TEXT, tables=("stepsize/runs",), evaluate=evaluate, primary=primary, grid=grid)]
