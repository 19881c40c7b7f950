"""Claims 1-4 (docs/claims.md), judged on the stability study's runs tables.

Intervals resample seeds: in the scalar part a seed is one replicate of the random starts, in
the matrix parts one random target R (shared by every depth, init and step of that seed).
Runs from a deterministic start on whitened data (scalar identity runs) are the same run in
every seed: exact intervals count each such run once (`distinct_scalar_runs`), and where a
statistic has no sampling noise at all its interval is the step grid's bracket.
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
    bootstrap_share_difference,
    cluster_share,
    percentile_interval,
    proportion,
    seed_weights,
    sign_test,
)

# random (plain) starts of the depth study (claim 3(b))
RANDOM_INITS = ("random", "gaussian")
# scalar starts without a random draw: the same run in every seed when the data is whitened
DETERMINISTIC_INITS = ("identity",)
# what makes a scalar run the run it is (the seed aside)
SCALAR_RUN_KEYS = ("depth", "target", "data_scale", "init", "delta")


def distinct_scalar_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Scalar runs with each run from a deterministic start counted once.

    A run from a deterministic start (identity) with the same depth, target, data scale and
    step is the same computation in every seed when the data is whitened (its data scale is
    then the same in every seed, so the key tells); with random data the scale differs per
    seed and the runs stay apart. Runs from random starts are all kept.
    """
    det = df["init"].isin(DETERMINISTIC_INITS)
    keys = [k for k in SCALAR_RUN_KEYS if k in df]
    once = df[det].drop_duplicates(subset=keys)
    return pd.concat([df[~det], once]).sort_index()


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


def _bracket(ratios: np.ndarray, point: float) -> float:
    """The first grid ratio above `point` (inf if none): the grid cannot place a threshold finer."""
    above = ratios[ratios > point]
    return float(above.min()) if len(above) else math.inf


def claim1(tables, setting: dict, th) -> list[Part]:
    scalar = select(tables["stability/scalar/runs"], setting)
    ratio = scalar["delta"] / scalar["delta_star"]
    # 6 significant digits: steps set as factors of delta*_L share a value across seeds.
    df = distinct_scalar_runs(scalar.assign(ratio=ratio.map(lambda x: float(f"{x:.6g}"))))
    tol = th["stable_delta_rel_tol"]
    above = df[df["ratio"] > 1 + tol]
    k = int(above["status"].eq("converged").sum())
    est, lo, hi = proportion(k, len(above), th["level"])
    n_det = int(above["init"].isin(DETERMINISTIC_INITS).sum())
    parts = [
        Part(
            "a",
            "theory check: share of distinct runs with delta > delta*_L that converged",
            est,
            lo,
            hi,
            th["check_max_share"],
            "<",
            f"{k} of {len(above)} distinct runs above delta*_L converged "
            f"({n_det} from the deterministic start, each counted once)",
        )
    ]
    positive = df[df["target"] > 0]
    groups = [c for c in ("depth", "target", "data_scale") if c in df]
    most = th["most_fraction"]
    ident_all = positive[positive["init"].eq("identity")]
    ident = ident_all[ident_all["ratio"] <= 1 + tol]
    if ident.empty:
        parts.append(
            not_run("b", "identity: largest convergent delta/delta*_L", "no identity runs with r > 0")
        )
    else:
        keys, ratios, conv, count = _convergence_table(ident, groups)
        best = _largest_convergent(_shares(conv, count), ratios, most)  # [G]
        best0 = np.where(np.isnan(best), 0.0, best)
        point = float(best0.min())
        grid = np.sort(ident_all["ratio"].unique())
        # the true largest convergent ratio of a group lies in [best, next grid ratio)
        upper = float(min(_bracket(grid, b) for b in best0))
        if count.sum(0).max() <= 1:  # one distinct run per (group, ratio): no sampling noise
            lo, hi = point, upper
            how = "interval: the step grid's bracket (one distinct run per step)"
        else:
            w = seed_weights(conv.shape[0], th["bootstrap"], ("claim1b", *setting.values()))
            reps = _largest_convergent(_shares(conv, count, w), ratios, most)
            reps = np.where(np.isnan(reps), 0.0, reps).min(-1)
            lo, hi = percentile_interval(reps, th["level"])
            hi = _bracket(grid, hi) if math.isfinite(hi) else hi
            how = "interval: seed bootstrap, upper end widened to the next grid step"
        parts.append(
            Part(
                "b",
                "identity: smallest over (L, r) groups of the "
                "largest delta/delta*_L where most distinct runs converge",
                point,
                lo,
                hi,
                th["identity_close_ratio"],
                ">=",
                f"{len(keys)} (L, r) groups with r > 0; {how}",
            )
        )
    rnd_init = th["claim1_random_init"]
    pair = positive[positive["init"].isin(("identity", rnd_init)) & positive["depth"].ge(2)]
    if pair["init"].nunique() < 2:
        parts.append(
            not_run("c", f"{rnd_init} vs identity", f"no {rnd_init} and identity runs with L >= 2 and r > 0")
        )
    else:
        pair = pair.assign(is_random=pair["init"].eq(rnd_init))
        keys, ratios, conv, count = _convergence_table(pair, [*groups, "is_random"])
        w = seed_weights(conv.shape[0], th["bootstrap"], ("claim1c", *setting.values()))

        rnd = keys["is_random"].to_numpy()
        point_best = _largest_convergent(_shares(conv, count), ratios, most)  # [G]
        # identity's runs counted once (one distinct run per step) have no sampling noise:
        # they are in every bootstrap replicate as they are
        fixed_identity = count[:, ~rnd].sum(0).max() <= 1

        def smaller(shares):  # share of groups where random's largest convergent ratio < identity's
            best = _largest_convergent(shares, ratios, most)  # [..., G]
            i = point_best[~rnd] if fixed_identity else best[..., ~rnd]
            r = np.where(np.isnan(best[..., rnd]), -1.0, best[..., rnd])
            return (r < np.where(np.isnan(i), -1.0, i)).mean(-1)

        lo, hi = percentile_interval(smaller(_shares(conv, count, w)), th["level"])
        n_groups = int((~keys["is_random"]).sum())
        parts.append(
            Part(
                "c",
                f"share of (L >= 2, r > 0) groups where the {rnd_init} start's "
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
    # the scalar identity runs are the same run in every seed: each counted once
    frames = [distinct_scalar_runs(f) if "delta_star" in f else f for f in frames]
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
            "engine check: share of distinct converged runs with "
            "(lambda_max + Lanczos residual) * delta / 2 > 1 + tol",
            est,
            lo,
            hi,
            th["check_max_share"],
            "<",
            f"{k} of {len(conv)} distinct converged runs above; largest (lambda_max + residual) delta/2 "
            f"= {fmt(float(upper.max()) if len(upper) else math.nan)}",
        )
    ]


# ------------------------------------------------------------------------------ claim 3 ----


def _delta_rel(df: pd.DataFrame) -> pd.Series:
    """The relative step c of each run (NaN for an absolute step or a table without the column)."""
    return df["delta_rel"] if "delta_rel" in df else pd.Series(np.nan, index=df.index)


def _step_setting(kind: str, value: float) -> dict:
    """A step setting of claim 3: kind "delta" (an absolute step) or "c" (c * delta_T1(L, rho))."""
    return {"step": f"{kind}={value:g}"}


def _depth_steps(df: pd.DataFrame, setting: dict) -> pd.DataFrame:
    """The depth runs of one step setting: {"step": "c=0.5"} the steps c * delta_T1(L, rho)
    (column delta_rel = c), {"step": "delta=0.005"} the absolute step (delta_rel NaN)."""
    if "step" not in setting:
        return df
    kind, value = setting["step"].split("=")
    rel = _delta_rel(df)
    if kind == "c":
        return df[np.isclose(rel, float(value))]
    return df[rel.isna() & np.isclose(df["delta"], float(value))]


def claim3(tables, setting: dict, th) -> list[Part]:
    df = _depth_steps(tables["stability/depth/runs"], setting)
    loss = df["final_loss"].astype(float).where(~df["status"].eq("diverged"), np.inf)
    floor = th["loss_floor"]
    raw = np.log10(loss.fillna(np.inf).clip(1e-300, 1e300))
    df = df.assign(loss=np.maximum(raw, math.log10(floor)), raw=raw)
    shallow, deep = int(df["depth"].min()), int(df["depth"].max())
    limit = math.log10(th["depth_degrade_factor"])
    kind, value = setting.get("step", "all=nan").split("=")
    where = f"steps {value} * delta_T1(L, rho)" if kind == "c" else f"delta {value}"
    parts = []
    for name, inits, side in (("a", ("identity",), "<="), ("b", RANDOM_INITS, ">")):
        sub = df[df["init"].isin(inits)]
        if sub.empty or shallow == deep:
            parts.append(not_run(name, "degradation with depth", "fewer than two depths or no such init"))
            continue
        # per seed (one target R): log10 loss at the deepest minus at the shallowest L
        per_seed = sub.pivot_table(index="seed", columns="depth", values="loss", aggfunc="median")
        gap = (per_seed[deep] - per_seed[shallow]).dropna()
        per_raw = sub.pivot_table(index="seed", columns="depth", values="raw", aggfunc="median")
        raw_gap = (per_raw[deep] - per_raw[shallow]).replace([np.inf, -np.inf], np.nan).dropna()
        at_floor = sub["raw"] <= math.log10(floor)
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
                f"{len(gap)} targets at {where}; {int(at_floor.sum())} of {len(sub)} runs at "
                f"the floor; without the floor the median is "
                f"{fmt(float(np.median(raw_gap)) if len(raw_gap) else math.nan)} "
                f"({len(raw_gap)} targets with finite losses)",
            )
        )
    return parts


def _depth_steps_grid(tables, th) -> list[dict]:
    """Robustness settings of claim 3: every absolute step and every factor of delta_T1."""
    df = tables["stability/depth/runs"]
    rel = _delta_rel(df)
    absolute = [_step_setting("delta", float(d)) for d in sorted(df.loc[rel.isna(), "delta"].unique())]
    return absolute + [_step_setting("c", float(c)) for c in sorted(rel.dropna().unique())]


# ------------------------------------------------------------------------------ claim 4 ----


def _pairs(svd: pd.DataFrame) -> pd.DataFrame:
    single = svd[svd["network"].eq("single")]
    double = svd[svd["network"].eq("double")]
    return single.merge(double[["pair_id", "status", "steps_to_tol"]], on="pair_id", suffixes=("_s", "_d"))


def _step_key(df: pd.DataFrame) -> pd.Series:
    """A run's step setting: the relative step c where there is one, else the absolute step."""
    rel = _delta_rel(df)
    return np.where(rel.isna(), "a" + df["delta"].map(lambda x: f"{x:.6g}"), "c" + rel.map(str))


def claim4(tables, setting: dict, th) -> list[Part]:
    svd = select(tables["stability/single_vs_double/runs"], setting)
    pairs = _pairs(svd)
    most = th["most_fraction"]
    speed_regime, stall_regime = th["claim4_speed_regime"], th["claim4_stall_regime"]
    parts = []
    speed = pairs[pairs["regime"].eq(speed_regime)]
    t_s = speed["steps_to_tol_s"].fillna(np.inf)
    t_d = speed["steps_to_tol_d"].fillna(np.inf)
    comparable = np.isfinite(t_s) | np.isfinite(t_d)
    if not comparable.any():
        parts.append(not_run("a", "double faster", "no pair where either network reached the tolerance"))
    else:
        faster = pd.Series((t_d < t_s)[comparable].to_numpy(dtype=float))
        seeds = speed.loc[comparable, "seed"].to_numpy()
        # one outcome per matrix (seed): the double network is faster in most of its pairs
        per_seed = faster.groupby(seeds).mean()
        wins = (per_seed > most).to_numpy()
        est, lo, hi = cluster_share(wins, per_seed.index.to_numpy(), th["level"])
        parts.append(
            Part(
                "a",
                f"share of matrices ({speed_regime} regime) where the double network reaches the "
                "tolerance in fewer steps in most of their (L, step) pairs",
                est,
                lo,
                hi,
                most,
                ">",
                f"{int(wins.sum())} of {len(wins)} matrices (exact interval over matrices); "
                f"{int(faster.sum())} of {int(comparable.sum())} pairs where either reached it, "
                f"{int((~comparable).sum())} where neither",
            )
        )
    single = svd[svd["network"].eq("single") & ~svd["status"].eq("diverged")]
    single = single.assign(step=_step_key(single))
    stall = single[single["regime"].eq(stall_regime) & (single["eig_min"] < 0)]
    control = single[single["regime"].eq(speed_regime)]
    shared = set(zip(stall["depth"], stall["step"], strict=True)) & set(
        zip(control["depth"], control["step"], strict=True)
    )

    def matched(d):
        return d[[k in shared for k in zip(d["depth"], d["step"], strict=True)]]

    stall, control = matched(stall), matched(control)
    if stall.empty or control.empty:
        parts.append(
            not_run(
                "b",
                "single stalls on negative eigenvalues",
                f"no non-diverged single runs of both the {stall_regime} (with a negative "
                f"eigenvalue) and the {speed_regime} regime at a common (L, step)",
            )
        )
    else:
        s_stall, c_stall = stall["steps_to_tol"].isna(), control["steps_to_tol"].isna()
        est, lo, hi = bootstrap_share_difference(
            s_stall, stall["seed"], c_stall, control["seed"], key=("claim4b",), **_boot(th)
        )
        parts.append(
            Part(
                "b",
                f"share of non-diverged single runs that never reach the tolerance: {stall_regime} "
                f"regime (negative eigenvalue) minus {speed_regime} regime at the same (L, step)",
                est,
                lo,
                hi,
                th["claim4_stall_excess"],
                ">",
                f"{int(s_stall.sum())} of {len(stall)} stall with a negative eigenvalue, "
                f"{int(c_stall.sum())} of {len(control)} without; {len(shared)} (L, step) settings",
            )
        )
    bad = ("diverged", "oscillating") if th["claim4_oscillation_unstable"] else ("diverged",)
    only_single = int((pairs["status_s"].isin(bad) & ~pairs["status_d"].isin(bad)).sum())
    only_double = int((pairs["status_d"].isin(bad) & ~pairs["status_s"].isin(bad)).sum())
    est, lo, hi, p = sign_test(only_single, only_double, th["level"])
    word = " or ".join(bad)
    parts.append(
        Part(
            "c",
            f"sign test: of the pairs where exactly one network is not stable ({word}), "
            "the share where it is the single one",
            est,
            lo,
            hi,
            0.5,
            ">",
            f"single only {only_single}, double only {only_double} of {len(pairs)} pairs (p = {fmt(p)})",
        )
    )
    return parts


def _depths(tables, th) -> list[dict]:
    """Robustness settings of claim 4: each depth (every part exists at every depth)."""
    svd = tables["stability/single_vs_double/runs"]
    return [{"depth": int(d)} for d in sorted(svd["depth"].unique())]


CLAIMS = [
    Claim(1, TEXT[1], ("stability/scalar/runs",), claim1, lambda t, th: {}, _scalar_groups),
    # a check of the engine over every converged run: the paper leaves no setting of it open
    Claim(2, TEXT[2], (), claim2, lambda t, th: {}, lambda t, th: []),
    Claim(
        3,
        TEXT[3],
        ("stability/depth/runs",),
        claim3,
        lambda t, th: _step_setting("c", th["claim3_delta_t1_factor"]),
        _depth_steps_grid,
    ),
    Claim(4, TEXT[4], ("stability/single_vs_double/runs",), claim4, lambda t, th: {}, _depths),
]
