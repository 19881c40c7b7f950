"""Claims 10 and 11 (ours, beyond the paper; docs/claims.md), judged on the edge study's tables.

Claim 10, on the scalar runs (`edge/runs`): (a) `phi(w_t)` does not increase along gradient
descent: the share of GD steps at which it rose among the non-diverged runs where the theorem's
hypotheses hold (part `a`) and where they do not (part `a_outside`), the wider of
Clopper-Pearson over steps and a bootstrap over runs, with the share of runs with any rise
(Clopper-Pearson over runs) and every regime in the evidence; (b) converged runs of the edge
regime end with `sharpness delta / 2` in `[1 - eps, 1]`; (c) converged runs of the flow regime
end with `|sharpness / phi(w_0) - 1| <= eps`; both shares of runs with exact intervals.
Headline: every depth pooled; robustness: one setting per depth.

Claim 11, on the box-counting dimensions (`edge/dimension`): at every depth of a map, the
whole interval of the dimension of the first window's boundary (bootstrap over boxes) lies
above `claim11_dimension_min`; one part per depth, the zooms and the trend with depth in the
evidence. Headline: `claim11_map`; robustness: every map and window.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.claims import Claim, Part, fmt, interval, not_run, select
from pipeline.stats import bootstrap_share

TEXT10 = (
    "Ours, beyond the paper: on the scalar deep linear network, (a) the sharpness phi(w_t) of the "
    "gradient-flow solution does not increase along gradient descent; (b) converged runs whose "
    "gradient-flow solution is too sharp for the step (2/phi(w_0) < delta < delta*_L) end with "
    "sharpness * delta / 2 in [1 - eps, 1]; (c) converged runs with delta < 2/phi(w_0) end at "
    "phi(w_0) within eps."
)
TEXT11 = (
    "Ours, beyond the paper: the converge/diverge boundary of gradient descent on the scalar deep "
    "linear network is fractal: its box-counting dimension is above 1, with the whole interval, "
    "at every depth."
)
COLUMNS10 = (
    "regime",
    "status",
    "hypotheses",
    "phi_increases",
    "phi_comparisons",
    "final_sharpness",
    "final_edge_ratio",
    "final_flow_ratio",
    "depth",
)
COLUMNS11 = ("map", "depth", "level", "dimension", "ci_low", "ci_high")
REGIMES = ("flow", "edge", "unstable", "stalls")


def _lower_tail(k: int, n: int, p: float) -> float:
    """P(X <= k), X ~ Binomial(n, p), from the k + 1 terms of the lower tail (O(k), not O(n))."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    j = np.arange(1, k + 1, dtype=float)
    log_c = np.concatenate([[0.0], np.cumsum(np.log(n - j + 1) - np.log(j))])
    logs = log_c + np.arange(k + 1) * math.log(p) + (n - np.arange(k + 1)) * math.log1p(-p)
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def _cdf(k: int, n: int, p: float) -> float:
    """P(X <= k): the lower tail, or one minus the upper tail where that has fewer terms."""
    if k < n - k:
        return _lower_tail(k, n, p)
    return 1.0 - _lower_tail(n - k - 1, n, 1.0 - p)


def exact_share(k: int, n: int, level: float) -> tuple[float, float, float]:
    """(k / n, low, high): the Clopper-Pearson interval (as `pipeline.stats.proportion`), with the
    binomial tails summed over their min(k, n - k) + 1 terms only, so that millions of GD steps
    cost milliseconds (`stats.binom_cdf` sums all n + 1 terms)."""
    if n <= 0:
        return math.nan, 0.0, 1.0
    alpha = (1 - level) / 2

    def solve(f, target, increasing):
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if (f(mid) < target) == increasing else (lo, mid)
        return (lo + hi) / 2

    low = 0.0 if k == 0 else solve(lambda p: 1 - _cdf(k - 1, n, p), alpha, True)
    high = 1.0 if k == n else solve(lambda p: _cdf(k, n, p), alpha, False)
    return k / n, low, high


def _steps_share(runs, level):
    """(share of compared steps at which phi rose, low, high; increases, comparisons).

    The steps of one run are not independent draws, so the interval is the wider of two: the
    Clopper-Pearson interval over steps (right when steps are independent, and not degenerate
    when no step rose) and a bootstrap over runs of the pooled share (each run one cluster)."""
    inc = runs["phi_increases"].to_numpy(dtype=float)
    comp = runs["phi_comparisons"].to_numpy(dtype=float)
    k, n = int(inc.sum()), int(comp.sum())
    est, lo, hi = exact_share(k, n, level)
    used = comp > 0
    _, b_lo, b_hi = bootstrap_share(
        inc[used] / comp[used], np.arange(int(used.sum())), weight=comp[used], level=level, key=("claim10",)
    )
    if math.isfinite(b_lo):
        lo, hi = min(lo, b_lo), max(hi, b_hi)
    return est, lo, hi, k, n


def _increase_part(name: str, runs, th) -> Part:
    where = "hold" if name == "a" else "do not hold"
    stat = f"share of GD steps at which phi rose (non-diverged runs; the theorem's hypotheses {where})"
    if runs.empty or int(runs["phi_comparisons"].sum()) == 0:
        return not_run(name, stat, f"no non-diverged run where the hypotheses {where}")
    est, lo, hi, k, n = _steps_share(runs, th["level"])
    rose = runs["phi_increases"].to_numpy() > 0
    r_est, r_lo, r_hi = exact_share(int(rose.sum()), len(rose), th["level"])
    per = []
    for regime in REGIMES:
        d = runs[runs["regime"] == regime]
        if len(d):
            per.append(
                f"{regime} {int(d['phi_increases'].sum())} of {int(d['phi_comparisons'].sum())} steps "
                f"in {int((d['phi_increases'] > 0).sum())} of {len(d)} runs"
            )
    return Part(
        name,
        stat,
        est,
        lo,
        hi,
        th["claim10_increase_max"],
        "<",
        f"phi rose at {k} of {n} steps (share {interval(est, lo, hi)}); runs with a rise "
        f"{int(rose.sum())} of {len(rose)} ({interval(r_est, r_lo, r_hi)}); {'; '.join(per)}",
    )


def _share_part(name: str, stat: str, hit, th, what: str) -> Part:
    hit = np.asarray(hit, dtype=bool)
    if hit.size == 0:
        return not_run(name, stat, f"no converged run of the {what} regime")
    est, lo, hi = exact_share(int(hit.sum()), hit.size, th["level"])
    return Part(
        name,
        stat,
        est,
        lo,
        hi,
        th["claim10_share_min"],
        ">=",
        f"{int(hit.sum())} of {hit.size} converged {what}-regime runs ({interval(est, lo, hi)})",
    )


def evaluate10(tables, setting: dict, th) -> list[Part]:
    runs = tables["edge/runs"]
    missing = [c for c in COLUMNS10 if c not in runs]
    if missing:
        why = f"the edge runs table lacks {', '.join(missing)}"
        return [not_run(p, "", why) for p in ("a", "a_outside", "b", "c")]
    runs = select(runs, setting)
    alive = runs[runs["status"] != "diverged"]
    hyp = alive["hypotheses"].astype(bool)
    eps, tol = th["claim10_eps"], th["claim10_rel_tol"]
    conv = runs[runs["status"] == "converged"]
    edge = conv[conv["regime"] == "edge"]
    ratio = edge["final_edge_ratio"].to_numpy(dtype=float)
    part_b = _share_part(
        "b",
        "share of converged edge-regime runs ending with sharpness delta / 2 in [1 - eps, 1]",
        (ratio >= 1 - eps) & (ratio <= 1 + tol),
        th,
        "edge",
    )
    if len(ratio):
        part_b.evidence += (
            f"; sharpness delta / 2 median {fmt(np.median(ratio))}, range "
            f"{fmt(ratio.min())}-{fmt(ratio.max())}; eps {fmt(eps)}"
        )
    flow = conv[conv["regime"] == "flow"]
    dev = np.abs(flow["final_flow_ratio"].to_numpy(dtype=float) - 1)
    part_c = _share_part(
        "c", "share of converged flow-regime runs ending at phi(w_0) within eps", dev <= eps, th, "flow"
    )
    if len(dev):
        part_c.evidence += f"; |sharpness / phi(w_0) - 1| median {fmt(np.median(dev))}, max {fmt(dev.max())}"
    return [_increase_part("a", alive[hyp], th), _increase_part("a_outside", alive[~hyp], th), part_b, part_c]


def _depth_grid(tables, th, key: str) -> list[dict]:
    runs = tables[key]
    if "depth" not in runs:
        return []
    return [{"depth": int(d)} for d in sorted(runs["depth"].unique())]


def evaluate11(tables, setting: dict, th) -> list[Part]:
    dims = tables["edge/dimension"]
    missing = [c for c in COLUMNS11 if c not in dims]
    if missing:
        return [not_run("all", "", f"the edge dimension table lacks {', '.join(missing)}")]
    level = setting.get("level", 0)
    sel = dims[(dims["map"] == setting["map"]) & (dims["level"] == level)].sort_values("depth")
    if sel.empty:
        return [not_run("all", "", f"no map {setting['map']} (window {level}) in this run")]
    zooms = dims[(dims["map"] == setting["map"]) & (dims["level"] != level)]
    trend = ", ".join(f"L={int(r.depth)} {fmt(r.dimension)}" for r in sel.itertuples())
    parts = []
    for r in sel.itertuples():
        z = zooms[zooms["depth"] == r.depth].sort_values("level")
        zoomed = "; ".join(
            f"window {int(q.level)} {interval(q.dimension, q.ci_low, q.ci_high)}" for q in z.itertuples()
        )
        parts.append(
            Part(
                f"L{int(r.depth)}",
                f"box-counting dimension of the boundary, map {setting['map']}, depth {int(r.depth)}",
                float(r.dimension),
                float(r.ci_low),
                float(r.ci_high),
                th["claim11_dimension_min"],
                ">",
                f"dimension {interval(r.dimension, r.ci_low, r.ci_high)} over box sizes "
                f"{list(np.asarray(r.box_sizes).tolist()) if hasattr(r, 'box_sizes') else ''}"
                f"{f'; zooms: {zoomed}' if zoomed else ''}; by depth: {trend}",
            )
        )
    return parts


def primary11(tables, th) -> dict:
    return {"map": th["claim11_map"], "level": 0}


def grid11(tables, th) -> list[dict]:
    dims = tables["edge/dimension"]
    if any(c not in dims for c in ("map", "level")):
        return []
    cells = dims[["map", "level"]].drop_duplicates().sort_values(["map", "level"])
    return [{"map": m, "level": int(v)} for m, v in cells.itertuples(index=False)]


CLAIMS = [
    Claim(
        10,
        TEXT10,
        tables=("edge/runs",),
        evaluate=evaluate10,
        primary=lambda tables, th: {},
        grid=lambda tables, th: _depth_grid(tables, th, "edge/runs"),
    ),
    Claim(11, TEXT11, tables=("edge/dimension",), evaluate=evaluate11, primary=primary11, grid=grid11),
]
