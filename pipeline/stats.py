"""Intervals for the claims' statistics: seed bootstrap, exact binomial, paired sign test.

- `bootstrap`: a statistic of runs grouped by seed, with a percentile interval from resampling
  whole seeds (all runs of a seed together), so runs that share a seed's draws (data, target,
  initial weights) are not counted as independent.
- `clopper_pearson`: the exact binomial interval of a count k out of n.
- `sign_test`: a paired comparison of two binary outcomes (McNemar's exact test): of the pairs
  where the outcomes differ, the share where the first one holds, with its exact interval.

All intervals are two-sided at `level` (0.95 by default). Everything is numpy; no scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline.seeds import numpy_rng


def bootstrap(
    runs: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    cluster: str = "seed",
    n_boot: int = 2000,
    level: float = 0.95,
    key: tuple = (),
) -> tuple[float, float, float]:
    """(estimate, low, high): `statistic(runs)` and its seed-bootstrap percentile interval.

    Each replicate draws as many seeds as there are, with replacement, and keeps all runs of
    each drawn seed. Replicates where the statistic is not finite are dropped; with one seed
    (or none) the interval is the estimate itself. `key` seeds the resampling.
    """
    estimate = float(statistic(runs))
    rows = list(runs.groupby(cluster, sort=True).indices.values()) if len(runs) else []
    if len(rows) < 2:
        return estimate, math.nan, math.nan
    rng = numpy_rng("bootstrap", *key)
    values = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(rows), size=len(rows))
        values[b] = statistic(runs.iloc[np.concatenate([rows[i] for i in pick])])
    values = values[np.isfinite(values)]
    if not len(values):
        return estimate, math.nan, math.nan
    alpha = (1 - level) / 2
    return estimate, float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def seed_weights(n_seeds: int, n_boot: int, key: tuple = ()) -> np.ndarray:
    """[n_boot, n_seeds] how often each seed is drawn in each bootstrap replicate."""
    rng = numpy_rng("bootstrap", *key)
    draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    return np.stack([np.bincount(d, minlength=n_seeds) for d in draws]).astype(float)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The two-sided percentile interval of bootstrap replicates (non-finite ones dropped)."""
    values = replicates[np.isfinite(replicates)]
    if not len(values):
        return math.nan, math.nan
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def bootstrap_share(
    hit, cluster, weight=None, n_boot: int = 2000, level: float = 0.95, key: tuple = ()
) -> tuple[float, float, float]:
    """(share of True in `hit`, seed-bootstrap interval); `cluster` gives each run's seed.

    With `weight`, each run counts `weight` items of which the fraction `hit` (in [0, 1])
    holds: the share pools the items (e.g. kinks or regions) of all runs.
    """
    hit = np.asarray(hit, dtype=float)
    if not len(hit):
        return math.nan, math.nan, math.nan
    weight = np.ones_like(hit) if weight is None else np.asarray(weight, dtype=float)
    seeds, idx = np.unique(np.asarray(cluster), return_inverse=True)
    k = np.bincount(idx, weights=hit * weight, minlength=len(seeds))
    n = np.bincount(idx, weights=weight, minlength=len(seeds))
    estimate = float(k.sum() / n.sum())
    if len(seeds) < 2:
        return estimate, math.nan, math.nan
    w = seed_weights(len(seeds), n_boot, key)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (estimate, *percentile_interval((w @ k) / (w @ n), level))


def bootstrap_share_difference(
    hit_a, cluster_a, hit_b, cluster_b, n_boot: int = 2000, level: float = 0.95, key: tuple = ()
) -> tuple[float, float, float]:
    """(share in a - share in b, interval), both resampled with the same seeds (paired by seed)."""
    hit_a, hit_b = np.asarray(hit_a, dtype=float), np.asarray(hit_b, dtype=float)
    if not len(hit_a) or not len(hit_b):
        return math.nan, math.nan, math.nan
    seeds = np.unique(np.concatenate([np.asarray(cluster_a), np.asarray(cluster_b)]))
    ia = np.searchsorted(seeds, np.asarray(cluster_a))
    ib = np.searchsorted(seeds, np.asarray(cluster_b))
    ka = np.bincount(ia, weights=hit_a, minlength=len(seeds))
    na = np.bincount(ia, minlength=len(seeds)).astype(float)
    kb = np.bincount(ib, weights=hit_b, minlength=len(seeds))
    nb = np.bincount(ib, minlength=len(seeds)).astype(float)
    estimate = float(ka.sum() / na.sum() - kb.sum() / nb.sum())
    if len(seeds) < 2:
        return estimate, math.nan, math.nan
    w = seed_weights(len(seeds), n_boot, key)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (estimate, *percentile_interval((w @ ka) / (w @ na) - (w @ kb) / (w @ nb), level))


def bootstrap_median(
    values, cluster, n_boot: int = 2000, level: float = 0.95, key: tuple = ()
) -> tuple[float, float, float]:
    """(median of `values`, seed-bootstrap interval of the median); NaN values are dropped."""
    values = np.asarray(values, dtype=float)
    cluster = np.asarray(cluster)
    keep = ~np.isnan(values)
    values, cluster = values[keep], cluster[keep]
    if not len(values):
        return math.nan, math.nan, math.nan
    estimate = float(np.median(values))
    seeds, idx = np.unique(cluster, return_inverse=True)
    if len(seeds) < 2:
        return estimate, math.nan, math.nan
    order = np.argsort(values, kind="stable")
    sorted_values, sorted_idx = values[order], idx[order]
    w = seed_weights(len(seeds), n_boot, key)[:, sorted_idx]  # [n_boot, runs] in value order
    cum = np.cumsum(w, axis=1)
    half = cum[:, -1:] / 2
    lower = sorted_values[np.argmax(cum >= half, axis=1)]  # weighted lower and upper medians
    upper = sorted_values[np.argmax(cum > half, axis=1)]
    return (estimate, *percentile_interval((lower + upper) / 2, level))


def _log_binom_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1)
    logc = math.lgamma(n + 1) - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in k])
    with np.errstate(divide="ignore"):
        return logc + k * np.log(p) + (n - k) * np.log1p(-p)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    logs = _log_binom_pmf(n, p)[: k + 1]
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def _solve(f: Callable[[float], float], target: float, increasing: bool) -> float:
    """The p in [0, 1] with f(p) = target, by bisection (f monotone in p)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion k/n ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    alpha = (1 - level) / 2
    # low: P(X >= k | p) = alpha; high: P(X <= k | p) = alpha
    low = 0.0 if k == 0 else _solve(lambda p: 1 - binom_cdf(k - 1, n, p), alpha, increasing=True)
    high = 1.0 if k == n else _solve(lambda p: binom_cdf(k, n, p), alpha, increasing=False)
    return low, high


def proportion(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """(k/n, low, high) with the Clopper-Pearson interval (NaN estimate when n = 0)."""
    low, high = clopper_pearson(k, n, level)
    return (k / n if n else math.nan), low, high


def sign_test(first_only: int, second_only: int, level: float = 0.95) -> tuple[float, float, float, float]:
    """McNemar's exact test of paired binary outcomes.

    `first_only`: pairs where only the first outcome holds; `second_only`: only the second.
    Returns (share of discordant pairs where the first holds, its Clopper-Pearson interval,
    two-sided p-value of "both equally likely"). The share is above 0.5 with confidence
    `level` exactly when the interval's low end is.
    """
    n = first_only + second_only
    share, low, high = proportion(first_only, n, level)
    if n == 0:
        return share, low, high, 1.0
    tail = binom_cdf(min(first_only, second_only), n, 0.5)
    return share, low, high, float(min(1.0, 2 * tail))
