"""The claims of the paper (docs/claims.md), each checked against the aggregated tables.

One function per claim. Each takes the tables it needs (a DataFrame, or None where the study
was switched off or its table does not exist) and the thresholds of the config's
`report.claims` block, and returns a `Verdict`: `supported`, `not supported` or `not run`,
with one evidence line holding the numbers behind it.

A claim with several parts is `not supported` as soon as one part fails, `not run` when no
part failed but one could not be checked (missing data), and `supported` when every part
holds. Thresholds only say what words such as "most", "close" or "small" mean; they are
fixed in config before looking at the data, never tuned to make a claim pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SUPPORTED, NOT_SUPPORTED, NOT_RUN = "supported", "not supported", "not run"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_RUN)
COLUMNS = ["claim_id", "claim", "verdict", "evidence"]

CLAIMS = {
    1: "Scalar: the empirical largest convergent delta is at most delta*_L for every L, and from "
    "identity init it is close to it; random init needs smaller delta.",
    2: "At convergence lambda_max(H) <= 2/delta (no run converges to an unstable equilibrium).",
    3: "Depth: with a fixed delta and budget, identity-initialised deep linear networks reach a training "
    "error that does not degrade with depth; random (plain) initialisation degrades.",
    4: "Double vs single network: the double network converges faster for most random matrices; the "
    "single network stalls on negative eigenvalues and diverges for some matrices where the double "
    "network does not.",
    5: "Biases move little during training (relative drift small, much smaller than weights').",
    6: "Narrow bias init gives estimates with Lipschitz constant <= the target's and imperfect fit; "
    "wide init fits the data.",
    7: "MNIST: train-test accuracy gap stays small at every epoch without explicit regularisation.",
}

# Names of the plain (non-residual) random initialisations in the stability tables.
RANDOM_INITS = ("random", "gaussian")
# The table names the claims read, in the order of the studies.
TABLES = ("scalar", "depth", "single_vs_double", "bias1d", "mnist")


@dataclass(frozen=True)
class Verdict:
    claim_id: int
    claim: str
    verdict: str
    evidence: str


def _verdict(claim_id: int, parts: list[bool | None], evidence: str) -> Verdict:
    """Combine the parts of a claim: any False -> not supported; any None -> not run."""
    if any(p is False for p in parts):
        verdict = NOT_SUPPORTED
    elif any(p is None for p in parts) or not parts:
        verdict = NOT_RUN
    else:
        verdict = SUPPORTED
    return Verdict(claim_id, CLAIMS[claim_id], verdict, evidence)


def _not_run(claim_id: int, why: str) -> Verdict:
    return Verdict(claim_id, CLAIMS[claim_id], NOT_RUN, why)


def _missing(df: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if c not in df.columns]


def _unusable(claim_id: int, df: pd.DataFrame | None, table: str, columns, absent: str) -> Verdict | None:
    """A `not run` verdict when `df` is absent or empty (`absent` says why) or lacks `columns`;
    None when the claim can be checked."""
    if df is None or df.empty:
        return _not_run(claim_id, f"no {table}: {absent}")
    miss = _missing(df, columns)
    return _not_run(claim_id, f"{table} lacks columns {miss}") if miss else None


def _g(x: float) -> str:
    """A number for an evidence line: 3 significant digits, 'nan' and 'inf' as such."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}"


def _pct(num: int, den: int) -> str:
    return f"{num}/{den} ({100.0 * num / den:.0f}%)" if den else "0/0"


def _most(num: int, den: int, most_fraction: float) -> bool:
    """'Most': strictly more than `most_fraction` of `den` (and at least one)."""
    return den > 0 and num / den > most_fraction


def _group_keys(df: pd.DataFrame, candidates) -> list[str]:
    return [c for c in candidates if c in df.columns and df[c].notna().any()]


def _key_label(keys: list[str], values) -> str:
    if not keys:
        return "all"
    values = values if isinstance(values, tuple) else (values,)
    return ",".join(f"{k}={_g(v) if isinstance(v, float) else v}" for k, v in zip(keys, values, strict=True))


# ----------------------------------------------------------------------------- claim 1 ----


def _largest_convergent(sub: pd.DataFrame, most_fraction: float) -> float:
    """Largest delta/delta* at which more than `most_fraction` of the runs converged (NaN: none)."""
    by_delta = sub.groupby("ratio")["converged"].mean()
    ok = by_delta[by_delta > most_fraction]
    return float(ok.index.max()) if len(ok) else math.nan


def claim1_critical_step(scalar: pd.DataFrame | None, th: Mapping) -> Verdict:
    """Claim 1 from the scalar study (one row per run; delta, delta_star, status, init, depth)."""
    cols = ["depth", "init", "delta", "delta_star", "status"]
    if v := _unusable(1, scalar, "scalar table", cols, "the stability study (scalar) is disabled in config"):
        return v
    ratio = scalar["delta"].astype(float) / scalar["delta_star"].astype(float)
    # 6 significant digits: steps set as factors of delta*_L fall on the same grid value for
    # every seed, whatever the rounding of delta*_L.
    df = scalar.assign(
        ratio=ratio.map(lambda x: float(f"{x:.6g}")), converged=scalar["status"].eq("converged")
    )
    keys = ["depth", *_group_keys(df, ["target"])]
    slack = 1.0 + th["stable_delta_rel_tol"]
    close = th["identity_close_ratio"]
    most = th["most_fraction"]

    # (a) no converged run above delta*_L, for any L.
    conv = df[df["converged"]]
    worst = conv.groupby("depth")["ratio"].max()
    above = int((conv["ratio"] > slack).sum())
    if conv.empty:
        part_a, ev_a = None, "(a) no run converged"
    else:
        part_a = above == 0
        per_l = ", ".join(f"L={int(d)}: {_g(r)}" for d, r in worst.items())
        ev_a = f"(a) largest convergent delta/delta*_L per L: {per_l}; {above} converged runs above delta*_L"

    # (b) identity init: largest convergent delta close to delta*_L in every group with r > 0
    # (for r < 0 the product of identity-initialised weights cannot change sign, Prop. 3).
    positive = df["target"].gt(0) if "target" in df else pd.Series(True, index=df.index)
    n_negative = int(df.loc[~positive & df["init"].eq("identity"), keys].drop_duplicates().shape[0])
    df = df[positive]
    ident = df[df["init"].eq("identity")]
    if ident.empty:
        part_b, ev_b = None, "(b) no identity-init runs"
    else:
        best = {k: _largest_convergent(g, most) for k, g in ident.groupby(keys)}
        far = [k for k, v in best.items() if not (v >= close)]
        part_b = not far
        lo = min(0.0 if math.isnan(v) else v for v in best.values())
        ev_b = (
            f"(b) identity: smallest over {len(best)} (L, r) groups of the largest convergent "
            f"delta/delta*_L = {_g(lo)} (close means >= {_g(close)})"
        )
        if far:
            ev_b += f", not close for {len(far)} group(s)"

    # (c) random init: largest convergent delta smaller than identity's (L >= 2; at L = 1 both coincide).
    rand = df[df["init"].isin(RANDOM_INITS) & df["depth"].ge(2)]
    ident2 = ident[ident["depth"].ge(2)]
    if rand.empty or ident2.empty:
        part_c, ev_c = None, "(c) no random-init runs with L >= 2 to compare"
    else:
        smaller, total, not_below = 0, 0, []
        id_best = {k: _largest_convergent(g, most) for k, g in ident2.groupby(keys)}
        for k, g in rand.groupby(keys):
            if k not in id_best:
                continue
            r_best = _largest_convergent(g, most)
            total += 1
            # never converging counts as needing a smaller delta than any tried
            if math.isnan(r_best) or r_best < id_best[k]:
                smaller += 1
            else:
                not_below.append(f"{_key_label(keys, k)} ({_g(r_best)} vs {_g(id_best[k])})")
        part_c = _most(smaller, total, most) if total else None
        ev_c = (
            f"(c) random init's largest delta/delta*_L at which most seeds converge is below identity's "
            f"in {_pct(smaller, total)} (L, r) groups with L >= 2"
        )
        if not_below:
            more = f" and {len(not_below) - 4} more" if len(not_below) > 4 else ""
            ev_c += f", not below for {', '.join(not_below[:4])}{more}"
    evidence = [ev_a, ev_b, ev_c]
    if n_negative:
        evidence.append(f"{n_negative} (L, r) groups with r < 0 left out of (b) and (c)")
    return _verdict(1, [part_a, part_b, part_c], "; ".join(evidence))


# ----------------------------------------------------------------------------- claim 2 ----


def claim2_edge_of_stability(stability: Mapping[str, pd.DataFrame | None], th: Mapping) -> Verdict:
    """Claim 2 over every converged run of the stability tables (scalar, depth, single_vs_double)."""
    frames = {k: v for k, v in stability.items() if v is not None and not v.empty}
    if not frames:
        return _not_run(2, "no stability table: the stability study is disabled in config")
    parts, counts, ratios = [], [], []
    for name, df in frames.items():
        if _missing(df, ["status", "sharpness", "delta"]):
            continue
        conv = df[df["status"].eq("converged") & np.isfinite(df["sharpness"].astype(float))]
        counts.append(f"{name} {len(conv)}")
        ratios.append(conv["sharpness"].astype(float) * conv["delta"].astype(float) / 2.0)
    ratio = pd.concat(ratios) if ratios else pd.Series(dtype=float)
    if ratio.empty:
        return _not_run(2, "no converged run with a measured sharpness")
    limit = 1.0 + th["sharpness_rel_tol"]
    over = int((ratio > limit).sum())
    parts.append(over == 0)
    evidence = (
        f"{len(ratio)} converged runs ({', '.join(counts)}): max lambda_max*delta/2 = {_g(ratio.max())}, "
        f"median {_g(ratio.median())}; {over} above 1 + {_g(th['sharpness_rel_tol'])}"
    )
    return _verdict(2, parts, evidence)


# ----------------------------------------------------------------------------- claim 3 ----


def _loss_with_divergence(df: pd.DataFrame) -> pd.Series:
    """Final loss, +inf where the run diverged or the loss is not finite."""
    loss = df["final_loss"].astype(float)
    loss = loss.where(np.isfinite(loss), np.inf)
    return loss.where(~df["status"].eq("diverged"), np.inf)


def claim3_depth(depth: pd.DataFrame | None, th: Mapping) -> Verdict:
    """Claim 3 from the depth study: median final loss at the deepest vs the shallowest L."""
    cols = ["depth", "init", "final_loss", "status"]
    if v := _unusable(3, depth, "depth table", cols, "the stability study (depth) is disabled in config"):
        return v
    df = depth.assign(loss=_loss_with_divergence(depth))
    step = "delta_rel" if "delta_rel" in df and df["delta_rel"].notna().any() else "delta"
    keys = _group_keys(df, [step, "iterations", "n", "eig_low", "eig_high"])
    factor, floor = th["depth_degrade_factor"], th["loss_floor"]

    def degrades(sub: pd.DataFrame) -> tuple[bool, float, float, int, int]:
        med = sub.groupby("depth")["loss"].median()
        shallow, deep = med.index.min(), med.index.max()
        bad = med[deep] > max(floor, factor * med[shallow])
        return bool(bad), float(med[shallow]), float(med[deep]), int(shallow), int(deep)

    parts, ev = [], []
    for label, inits, want in (("identity", ("identity",), False), ("random", RANDOM_INITS, True)):
        sub = df[df["init"].isin(inits)]
        if sub.empty or sub["depth"].nunique() < 2:
            parts.append(None)
            ev.append(f"{label}: fewer than two depths run")
            continue
        groups = list(sub.groupby(keys)) if keys else [((), sub)]
        results = [degrades(g) for _, g in groups]
        hits = sum(r[0] == want for r in results)
        parts.append(hits == len(results))
        lines = [
            f"L={r[3]}: {_g(r[1])} -> L={r[4]}: {_g(r[2])}"
            + (f" [{_key_label(keys, k)}]" if len(groups) > 1 else "")
            for (k, _), r in zip(groups, results, strict=True)
        ]
        word = "degrades" if want else "does not degrade"
        ev.append(f"{label} median final loss {'; '.join(lines)} ({word} in {hits}/{len(results)} settings)")
    ev.append(f"degrade = deepest median > max({_g(floor)}, {_g(factor)} x shallowest median)")
    return _verdict(3, parts, "; ".join(ev))


# ----------------------------------------------------------------------------- claim 4 ----


def claim4_double_vs_single(svd: pd.DataFrame | None, th: Mapping) -> Verdict:
    """Claim 4 from the single_vs_double study, pairing single and double runs on the same matrix."""
    cols = ["network", "status", "steps_to_tol", "eig_min"]
    absent = "the stability study (single_vs_double) is disabled in config"
    if v := _unusable(4, svd, "single_vs_double table", cols, absent):
        return v
    most, some = th["most_fraction"], th["min_count_some"]
    # pair_id names the (matrix, step) both networks ran on; else match on the inputs
    inputs = ("seed", "depth", "n", "init", "eig_low", "eig_high", "delta_rel", "delta")
    keys = ["pair_id"] if "pair_id" in svd else [c for c in inputs if c in svd]
    single = svd[svd["network"].eq("single")]
    double = svd[svd["network"].eq("double")]
    # Pairs on the same matrix and step; NaN keys (e.g. delta_rel unused) match each other.
    pairs = single.merge(double, on=keys, suffixes=("_s", "_d"))
    if pairs.empty:
        return _not_run(4, "no single/double pairs on the same matrix")
    t_s = pairs["steps_to_tol_s"].astype(float).fillna(np.inf)
    t_d = pairs["steps_to_tol_d"].astype(float).fillna(np.inf)
    # (a) speed, over the pairs where at least one network reached the tolerance.
    comparable = np.isfinite(t_s) | np.isfinite(t_d)
    faster = int((t_d < t_s)[comparable].sum())
    n_comp = int(comparable.sum())
    part_a = _most(faster, n_comp, most) if n_comp else None
    ev_a = (
        f"(a) double reaches the tolerance in fewer steps for {_pct(faster, n_comp)} pairs "
        f"({len(pairs) - n_comp} pairs where neither reached it left out)"
    )
    # (b) single network, identity init, matrices with a negative eigenvalue: stalls (never
    # reaches the tolerance without diverging).
    neg = single[single["eig_min"].astype(float) < 0]
    if "init" in neg:
        neg = neg[neg["init"].eq("identity")]
    neg = neg[~neg["status"].eq("diverged")]
    if neg.empty:
        part_b, ev_b = None, "(b) no non-diverged single runs on matrices with a negative eigenvalue"
    else:
        stalled = int(neg["steps_to_tol"].isna().sum())
        part_b = _most(stalled, len(neg), most)
        ev_b = (
            f"(b) single network stalls (never reaches the tolerance) on {_pct(stalled, len(neg))} "
            "matrices with a negative eigenvalue"
        )
    # (c) single diverges where double does not.
    only_single = int((pairs["status_s"].eq("diverged") & ~pairs["status_d"].eq("diverged")).sum())
    only_double = int((pairs["status_d"].eq("diverged") & ~pairs["status_s"].eq("diverged")).sum())
    part_c = only_single >= some
    ev_c = (
        f"(c) single diverges where double does not: {only_single}/{len(pairs)} pairs "
        f"(the reverse: {only_double}); 'some' means >= {some}"
    )
    return _verdict(4, [part_a, part_b, part_c], "; ".join([ev_a, ev_b, ev_c]))


# ----------------------------------------------------------------------------- claim 5 ----


def claim5_bias_drift(bias1d: pd.DataFrame | None, th: Mapping) -> Verdict:
    """Claim 5 from the 1-D study: relative bias drift small and much smaller than the weights'."""
    cols = ["bias_drift_rel_median"]
    if v := _unusable(5, bias1d, "bias1d table", cols, "the 1-D bias study is disabled in config"):
        return v
    bias = float(bias1d["bias_drift_rel_median"].astype(float).median())
    part_a = bias <= th["bias_drift_rel_max"]
    ev = [
        f"median over {len(bias1d)} runs of the per-run median relative bias drift = {_g(bias)} "
        f"(small means <= {_g(th['bias_drift_rel_max'])})"
    ]
    if "weight_drift_rel_median" in bias1d:
        weight = float(bias1d["weight_drift_rel_median"].astype(float).median())
        ratio = weight / bias if bias > 0 else math.inf
        part_b = ratio >= th["weight_to_bias_drift_min"]
        ev.append(
            f"weights' relative drift {_g(weight)}, {_g(ratio)}x the biases' "
            f"(much smaller means >= {_g(th['weight_to_bias_drift_min'])}x)"
        )
    else:
        part_b = None
        ev.append("no relative weight drift (weight_drift_rel_median) to compare with")
    return _verdict(5, [part_a, part_b], "; ".join(ev))


# ----------------------------------------------------------------------------- claim 6 ----


def claim6_narrow_vs_wide(bias1d: pd.DataFrame | None, th: Mapping) -> Verdict:
    """Claim 6 from the 1-D study: the narrowest vs the widest bias-init interval."""
    cols = ["init_low", "init_high", "lipschitz", "target_lipschitz", "fitted_fraction"]
    if v := _unusable(6, bias1d, "bias1d table", cols, "the 1-D bias study is disabled in config"):
        return v
    df = bias1d.assign(width=(bias1d["init_high"] - bias1d["init_low"]).round(12))
    if df["width"].nunique() < 2:
        return _not_run(6, "only one bias-init interval was run")
    most, fit_min = th["most_fraction"], th["fitted_fraction_min"]
    lip_ok = df["lipschitz"] <= df["target_lipschitz"] * (1.0 + th["lipschitz_rel_tol"])
    fits = df["fitted_fraction"] >= fit_min
    narrow = df["width"].eq(df["width"].min())
    wide = df["width"].eq(df["width"].max())

    def name(mask) -> str:
        row = df.loc[mask].iloc[0]
        label = f"'{row['interval']}' " if "interval" in df else ""
        return f"{label}[{_g(float(row['init_low']))}, {_g(float(row['init_high']))}]"

    n_n, n_w = int(narrow.sum()), int(wide.sum())
    lip_n, unfit_n, fit_w = (
        int((lip_ok & narrow).sum()),
        int((~fits & narrow).sum()),
        int((fits & wide).sum()),
    )
    parts = [_most(lip_n, n_n, most), _most(unfit_n, n_n, most), _most(fit_w, n_w, most)]
    ratio_n = (df.loc[narrow, "lipschitz"] / df.loc[narrow, "target_lipschitz"]).median()
    evidence = (
        f"narrowest init interval {name(narrow)}: Lipschitz <= (1+{_g(th['lipschitz_rel_tol'])}) "
        "x target's in "
        f"{_pct(lip_n, n_n)} runs (median ratio {_g(float(ratio_n))}), "
        f"imperfect fit (fitted fraction < {_g(fit_min)}) in "
        f"{_pct(unfit_n, n_n)}; widest {name(wide)}: fits in {_pct(fit_w, n_w)} runs "
        f"(median fitted fraction narrow {_g(float(df.loc[narrow, 'fitted_fraction'].median()))}, "
        f"wide {_g(float(df.loc[wide, 'fitted_fraction'].median()))})"
    )
    return _verdict(6, parts, evidence)


# ----------------------------------------------------------------------------- claim 7 ----


def claim7_mnist_gap(mnist: pd.DataFrame | None, th: Mapping) -> Verdict:
    """Claim 7 from the MNIST metrics of the paper's model (one row per epoch)."""
    table = f"metrics of MNIST variant '{th['mnist_variant']}'"
    absent = "the mnist study or that variant is disabled in config"
    if v := _unusable(7, mnist, table, ["epoch", "train_acc", "test_acc"], absent):
        return v
    df = mnist.sort_values("epoch")
    train, test = df["train_acc"].astype(float), df["test_acc"].astype(float)
    scale = 100.0 if max(train.max(), test.max()) <= 1.0 else 1.0  # fractions -> points
    gap = (train - test).abs() * scale
    worst = int(gap.to_numpy().argmax())
    limit = th["max_gap_points"]
    evidence = (
        f"variant {th['mnist_variant']}, {len(df)} epochs: max |train - test| accuracy gap "
        f"{gap.max():.2f} points (epoch {int(df['epoch'].iloc[worst])}), mean {gap.mean():.2f}; "
        f"final train {train.iloc[-1] * scale:.2f}%, test {test.iloc[-1] * scale:.2f}%; "
        f"small means <= {_g(limit)} points"
    )
    return _verdict(7, [bool(gap.max() <= limit)], evidence)


# ------------------------------------------------------------------------------ all -------


def read_table(path: str | Path | None) -> pd.DataFrame | None:
    """A Parquet table, or None where no path is given or the file does not exist."""
    if path is None or not Path(path).is_file():
        return None
    return pd.read_parquet(path)


def check_claims(tables: Mapping[str, pd.DataFrame | None], thresholds: Mapping) -> pd.DataFrame:
    """Every claim's verdict as a table with COLUMNS, one row per claim in order 1..7.

    `tables` maps each name of TABLES to its DataFrame or None (study not run).
    """
    t = {name: tables.get(name) for name in TABLES}
    stability = {k: t[k] for k in ("scalar", "depth", "single_vs_double")}
    verdicts = [
        claim1_critical_step(t["scalar"], thresholds),
        claim2_edge_of_stability(stability, thresholds),
        claim3_depth(t["depth"], thresholds),
        claim4_double_vs_single(t["single_vs_double"], thresholds),
        claim5_bias_drift(t["bias1d"], thresholds),
        claim6_narrow_vs_wide(t["bias1d"], thresholds),
        claim7_mnist_gap(t["mnist"], thresholds),
    ]
    return pd.DataFrame([asdict(v) for v in verdicts], columns=COLUMNS)
