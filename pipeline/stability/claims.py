"""Claims 1-4 (docs/claims.md), judged on the stability study's runs tables.

Intervals resample seeds: in the scalar part a seed is one replicate of the random starts, in
the matrix parts one random target R (shared by every depth, init and step of that seed).
Claims 1(a) and 2 are checks of the theory and of the engine rather than findings: they
fail only if the engine or the theory is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.claims import Claim, Part, fmt, not_run, select
from pipeline.stats import (
    bootstrap_median,
    bootstrap_share,
    percentile_interval,
    proportion,
    seed_weights,
    sign_test,
)

RANDOM_INITS = ("random", "gaussian")

TEXT = {
    1: "Scalar: the empirical largest convergent delta is at most delta*_L for every L, and from "
    "identity init it is close to it; random init needs smaller delta.",
    2: "At convergence lambda_max(H) <= 2/delta (no run converges to an unstable equilibrium).",
    3: "Depth: with a fixed delta and budget, identity-initialised deep linear networks reach a training "
    "error that does not degrade with depth; random (plain) initialisation degrades.",
    4: "Double vs single network: the double network converges faster for most random matrices; the "
    "single network stalls on negative eigenvalues and diverges for some matrices where the double "
    "network does not.",
}


def _boot(th) -> dict:
    return {"n_boot": th["bootstrap"], "level": th["level"]}


# ------------------------------------------------------------------------------ claim 1 ----


def _largest_convergent(shares: np.ndarray, ratios: np.ndarray, most: float) -> np.ndarray:
    """Largest ratio whose share of converged runs exceeds `most`, along the last axis (NaN: none).

    shares [..., R] over ratios [R] (sorted ascending).
    """
    ok = shares > most
    idx = np.where(ok.any(-1), ok.shape[-1] - 1 - np.argmax(ok[..., ::-1], axis=-1), -1)
    return np.where(idx >= 0, ratios[np.maximum(idx, 0)], np.nan)


def _convergence_table(df: pd.DataFrame, groups: list[str]):
    """Per seed, group and step ratio: converged count and run count, as arrays [S, G, R]."""
    seeds = np.sort(df["seed"].unique())
    keys = df[groups].drop_duplicates().sort_values(groups)
    ratios = np.sort(df["ratio"].unique())
    g_index = {tuple(k): i for i, k in enumerate(keys.itertuples(index=False))}
    gi = np.array([g_index[tuple(k)] for k in df[groups].itertuples(index=False)])
    si = np.searchsorted(seeds, df["seed"].to_numpy())
    ri = np.searchsorted(ratios, df["ratio"].to_numpy())
    shape = (len(seeds), len(keys), len(ratios))
    conv = np.zeros(shape)
    count = np.zeros(shape)
    np.add.at(conv, (si, gi, ri), df["status"].eq("converged").to_numpy())
    np.add.at(count, (si, gi, ri), 1)
    return keys.reset_index(drop=True), ratios, conv, count


def _shares(conv, count, weights=None):
    """Share of converged runs per group and ratio: [G, R], or [B, G, R] under seed weights [B, S]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if weights is None:
            return conv.sum(0) / count.sum(0)
        return np.einsum("bs,sgr->bgr", weights, conv) / np.einsum("bs,sgr->bgr", weights, count)


def claim1(tables, setting: dict, th) -> list[Part]:
    scalar = select(tables["stability/scalar/runs"], setting)
    ratio = scalar["delta"] / scalar["delta_star"]
    # 6 significant digits: steps set as factors of delta*_L share a value across seeds.
    df = scalar.assign(ratio=ratio.map(lambda x: float(f"{x:.6g}")))
    tol = th["stable_delta_rel_tol"]
    above = df[df["ratio"] > 1 + tol]
    k = int(above["status"].eq("converged").sum())
    est, lo, hi = proportion(k, len(above), th["level"])
    parts = [
        Part(
            "a",
            "theory check: share of runs with delta > delta*_L that converged",
            est,
            lo,
            hi,
            th["check_max_share"],
            "<",
            f"{k} of {len(above)} runs above delta*_L converged",
        )
    ]
    positive = df[df["target"] > 0]
    groups = [c for c in ("depth", "target", "data_scale") if c in df]
    most = th["most_fraction"]
    ident = positive[positive["init"].eq("identity") & (positive["ratio"] <= 1 + tol)]
    if ident.empty:
        parts.append(
            not_run("b", "identity: largest convergent delta/delta*_L", "no identity runs with r > 0")
        )
    else:
        keys, ratios, conv, count = _convergence_table(ident, groups)
        point = np.nanmin(_largest_convergent(_shares(conv, count), ratios, most))
        w = seed_weights(conv.shape[0], th["bootstrap"], ("claim1b", *setting.values()))
        reps = _largest_convergent(_shares(conv, count, w), ratios, most)
        reps = np.where(np.isnan(reps), 0.0, reps).min(-1)
        lo, hi = percentile_interval(reps, th["level"])
        parts.append(
            Part(
                "b",
                "identity: smallest over (L, r) groups of the "
                "largest delta/delta*_L where most seeds converge",
                0.0 if math.isnan(point) else float(point),
                lo,
                hi,
                th["identity_close_ratio"],
                ">=",
                f"{len(keys)} (L, r) groups with r > 0",
            )
        )
    pair = positive[positive["init"].isin(("identity", *RANDOM_INITS)) & positive["depth"].ge(2)]
    if pair["init"].nunique() < 2:
        parts.append(not_run("c", "random vs identity", "no random and identity runs with L >= 2 and r > 0"))
    else:
        pair = pair.assign(is_random=pair["init"].isin(RANDOM_INITS))
        keys, ratios, conv, count = _convergence_table(pair, [*groups, "is_random"])
        w = seed_weights(conv.shape[0], th["bootstrap"], ("claim1c", *setting.values()))

        def smaller(shares):  # share of groups where random's largest convergent ratio < identity's
            best = _largest_convergent(shares, ratios, most)  # [..., G]
            rnd = keys["is_random"].to_numpy()
            r, i = np.where(np.isnan(best[..., rnd]), -1.0, best[..., rnd]), best[..., ~rnd]
            return (r < np.where(np.isnan(i), -1.0, i)).mean(-1)

        lo, hi = percentile_interval(smaller(_shares(conv, count, w)), th["level"])
        n_groups = int((~keys["is_random"]).sum())
        parts.append(
            Part(
                "c",
                "share of (L >= 2, r > 0) groups where random init's "
                "largest convergent delta is below identity's",
                float(smaller(_shares(conv, count))),
                lo,
                hi,
                most,
                ">",
                f"{n_groups} groups; never converging counts as below",
            )
        )
    return parts


def _scalar_groups(tables, th) -> list[dict]:
    df = tables["stability/scalar/runs"]
    return [
        {"target": float(r), "data_scale": float(s)}
        for r, s in df[["target", "data_scale"]].drop_duplicates().itertuples(index=False)
    ]


# ------------------------------------------------------------------------------ claim 2 ----

EXPERIMENTS = ("scalar", "depth", "single_vs_double")


def claim2(tables, setting: dict, th) -> list[Part]:
    frames = [
        select(tables[f"stability/{e}/runs"], setting)
        for e in EXPERIMENTS
        if tables.get(f"stability/{e}/runs") is not None and setting.get("experiment", e) == e
    ]
    if not frames:
        return [not_run("a", "engine check", "no stability table: the study is switched off in config")]
    runs = pd.concat(frames, ignore_index=True)
    conv = runs[runs["status"].eq("converged") & np.isfinite(runs["sharpness"])]
    upper = (conv["sharpness"] + conv["sharpness_residual"].fillna(0.0)) * conv["delta"] / 2
    limit = 1 + th["sharpness_rel_tol"]
    k = int((upper > limit).sum())
    est, lo, hi = proportion(k, len(conv), th["level"])
    return [
        Part(
            "a",
            "engine check: share of converged runs with "
            "(lambda_max + Lanczos residual) * delta / 2 > 1 + tol",
            est,
            lo,
            hi,
            th["check_max_share"],
            "<",
            f"{k} of {len(conv)} converged runs above; largest (lambda_max + residual) delta/2 "
            f"= {fmt(float(upper.max()) if len(upper) else math.nan)}",
        )
    ]


# ------------------------------------------------------------------------------ claim 3 ----


def claim3(tables, setting: dict, th) -> list[Part]:
    df = select(tables["stability/depth/runs"], setting)
    loss = df["final_loss"].astype(float).where(~df["status"].eq("diverged"), np.inf)
    floor = th["loss_floor"]
    df = df.assign(loss=np.log10(np.clip(loss.fillna(np.inf), floor, 1e300)))
    shallow, deep = int(df["depth"].min()), int(df["depth"].max())
    limit = math.log10(th["depth_degrade_factor"])
    parts = []
    for name, inits, side in (("a", ("identity",), "<="), ("b", RANDOM_INITS, ">")):
        sub = df[df["init"].isin(inits)]
        if sub.empty or shallow == deep:
            parts.append(not_run(name, "degradation with depth", "fewer than two depths or no such init"))
            continue
        # per seed (one target R): log10 loss at the deepest minus at the shallowest L
        per_seed = sub.pivot_table(index="seed", columns="depth", values="loss", aggfunc="median")
        gap = (per_seed[deep] - per_seed[shallow]).dropna()
        est, lo, hi = bootstrap_median(
            gap.to_numpy(), gap.index.to_numpy(), key=("claim3", name), **_boot(th)
        )
        word = (
            "identity"
            if name == "a"
            else "random (" + "/".join(i for i in inits if i in set(df["init"])) + ")"
        )
        parts.append(
            Part(
                name,
                f"{word}: median over targets of log10(loss at L={deep} / loss at L={shallow}), "
                f"losses floored at {fmt(floor)}",
                est,
                lo,
                hi,
                limit,
                side,
                f"{len(gap)} targets at delta {fmt(float(df['delta'].iloc[0]))}",
            )
        )
    return parts


def _depth_deltas(tables, th) -> list[dict]:
    return [{"delta": float(d)} for d in sorted(tables["stability/depth/runs"]["delta"].unique())]


# ------------------------------------------------------------------------------ claim 4 ----


def _pairs(svd: pd.DataFrame) -> pd.DataFrame:
    single = svd[svd["network"].eq("single")]
    double = svd[svd["network"].eq("double")]
    return single.merge(double[["pair_id", "status", "steps_to_tol"]], on="pair_id", suffixes=("_s", "_d"))


def claim4(tables, setting: dict, th) -> list[Part]:
    svd = select(tables["stability/single_vs_double/runs"], setting)
    pairs = _pairs(svd)
    most = th["most_fraction"]
    parts = []
    speed = pairs if "regime" in setting else pairs[pairs["regime"].eq(th["claim4_speed_regime"])]
    t_s = speed["steps_to_tol_s"].fillna(np.inf)
    t_d = speed["steps_to_tol_d"].fillna(np.inf)
    comparable = np.isfinite(t_s) | np.isfinite(t_d)
    if not comparable.any():
        parts.append(not_run("a", "double faster", "no pair where either network reached the tolerance"))
    else:
        faster = (t_d < t_s)[comparable]
        est, lo, hi = bootstrap_share(faster, speed.loc[comparable, "seed"], key=("claim4a",), **_boot(th))
        regimes = "/".join(sorted(speed["regime"].unique()))
        parts.append(
            Part(
                "a",
                f"share of pairs ({regimes} regime) where the double "
                "network reaches the tolerance in fewer steps",
                est,
                lo,
                hi,
                most,
                ">",
                f"{int(comparable.sum())} pairs where either reached "
                f"it, {int((~comparable).sum())} where neither",
            )
        )
    single = svd[svd["network"].eq("single") & (svd["eig_min"] < 0) & ~svd["status"].eq("diverged")]
    if "regime" not in setting:
        single = single[single["regime"].eq(th["claim4_stall_regime"])]
    if single.empty:
        if "regime" not in setting:
            parts.append(not_run("b", "single stalls", "no matrix with a negative eigenvalue"))
    else:
        stalled = single["steps_to_tol"].isna()
        est, lo, hi = bootstrap_share(stalled, single["seed"], key=("claim4b",), **_boot(th))
        parts.append(
            Part(
                "b",
                "share of non-diverged single runs on matrices with "
                "a negative eigenvalue that never reach the tolerance",
                est,
                lo,
                hi,
                most,
                ">",
                f"{int(stalled.sum())} of {len(single)} runs stall",
            )
        )
    only_single = int((pairs["status_s"].eq("diverged") & ~pairs["status_d"].eq("diverged")).sum())
    only_double = int((pairs["status_d"].eq("diverged") & ~pairs["status_s"].eq("diverged")).sum())
    est, lo, hi, p = sign_test(only_single, only_double, th["level"])
    parts.append(
        Part(
            "c",
            "sign test: of the pairs where exactly one network "
            "diverges, the share where it is the single one",
            est,
            lo,
            hi,
            0.5,
            ">",
            f"single only {only_single}, double only {only_double} of {len(pairs)} pairs (p = {fmt(p)})",
        )
    )
    return parts


def _regime_depths(tables, th) -> list[dict]:
    svd = tables["stability/single_vs_double/runs"]
    return [
        {"regime": r, "depth": int(d)}
        for r, d in svd[["regime", "depth"]]
        .drop_duplicates()
        .sort_values(["regime", "depth"])
        .itertuples(index=False)
    ]


CLAIMS = [
    Claim(1, TEXT[1], ("stability/scalar/runs",), claim1, lambda t, th: {}, _scalar_groups),
    # a check of the engine over every converged run: the paper leaves no setting of it open
    Claim(2, TEXT[2], (), claim2, lambda t, th: {}, lambda t, th: []),
    Claim(
        3,
        TEXT[3],
        ("stability/depth/runs",),
        claim3,
        lambda t, th: {"delta": th["claim3_delta"]},
        _depth_deltas,
    ),
    Claim(4, TEXT[4], ("stability/single_vs_double/runs",), claim4, lambda t, th: {}, _regime_depths),
]
