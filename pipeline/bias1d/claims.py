"""Claims 5, 6 and 9 (docs/claims.md), judged on the 1-D study's snapshots.

Claims 5 and 6 read the main grid's runs (gradient-only, the main noise level). A setting is
one cell of the 1-D grid: target, depth, momentum, iteration budget (a snapshot of the same
runs) and the bias init interval (claim 6: the narrow interval compared with the widest). The
headline verdict is at the primary setting of `report.claims` (the paper's piecewise-affine
target; the sine target, ours, only counts in the robustness grid).

Claim 9 (ours) reads the comparison of bias updates: in a setting (target, depth, init
interval, momentum, iteration budget) each seed and noise level gives a pair of runs, one
gradient-only and one with exact kink searches, from the same initial parameters and data.

Intervals are exact at the seed counts used: a share of runs (one run per seed in a setting)
gets the Clopper-Pearson interval over seeds (`cluster_share`), a median over seeds the
distribution-free order-statistic interval (`median_interval`; a part whose seeds are too few
for the level is `not run`). Diverged and collapsed runs are left out of every share and
median and counted in the evidence.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.bias1d.summary import GRADIENT, SEARCH, main_grid, run_costs
from pipeline.claims import Claim, Part, combine, fmt, judge, not_run, select
from pipeline.stats import cluster_share, median_interval, minimum_seeds

TEXT = {
    5: "Biases move little during training: the biases and kinks of live layers move less than a "
    "data spacing.",
    6: "Narrow bias init (kinks that cannot reach every region where the target bends) gives estimates "
    "that fit the data imperfectly, follow the local least-squares lines and have a Lipschitz constant "
    "<= the target's; wide init fits the data.",
    9: "Ours, beyond the paper: non-gradient bias updates (exact kink search) fit faster, but raise "
    "the Lipschitz constant and the test error on noisy data.",
}
KEYS = ("target", "depth", "momentum", "iterations")
INPUTS = ["run_id", "seed", "target", "depth", "interval", "half_width", "momentum", "interval_kind"]


_CELLS: dict = {}  # the last tables' cells: every setting of a grid reads the same join


def _cells(tables) -> pd.DataFrame:
    """Snapshots of the main grid's runs joined with their inputs, `iterations` = the snapshot's
    iteration (computed once per pair of tables; callers only read it)."""
    runs, snaps = tables["bias1d/runs"], tables["bias1d/snapshots"]
    hit = _CELLS.get("last")
    if hit is None or hit[0] is not runs or hit[1] is not snaps:
        cells = snaps.merge(main_grid(runs)[INPUTS], on="run_id").rename(columns={"iteration": "iterations"})
        hit = _CELLS["last"] = (runs, snaps, cells)
    return hit[2]


def _typed(setting: dict) -> dict:
    return {
        k: float(v) if k == "momentum" else int(v) if k in ("depth", "iterations") else v
        for k, v in setting.items()
    }


def _left_out(df: pd.DataFrame) -> str:
    """The evidence's count of diverged and collapsed runs (left out of the statistic)."""
    counts = {s: int(df["status"].eq(s).sum()) for s in ("diverged", "collapsed")}
    said = [f"{n} {s}" for s, n in counts.items() if n]
    return f"; left out: {' and '.join(said)}" if said else ""


def _median_part(name, statistic, values, threshold, side, evidence, th) -> Part:
    """A part whose statistic is the median over seeds of `values` (one per seed), with the
    distribution-free interval; `not run` when the seeds are too few for the level."""
    values = pd.Series(values, dtype=float).dropna()
    est, low, high, achieved = median_interval(values.to_numpy(), th["level"])
    if achieved < th["level"]:
        need = minimum_seeds(th["level"], "median_interval")
        return not_run(
            name, statistic, f"{len(values)} seeds, fewer than the {need} a median needs; {evidence}"
        )
    return Part(name, statistic, est, low, high, threshold, side, evidence)


def _share_part(name, statistic, hit, seeds, threshold, side, evidence, th) -> Part:
    """A part whose statistic is a share of seeds (one binary outcome each), exact interval."""
    if not len(hit):
        return not_run(name, statistic, f"no run to judge; {evidence}")
    est, low, high = cluster_share(np.asarray(hit, dtype=float), np.asarray(seeds), th["level"])
    return Part(
        name, statistic, est, low, high, threshold, side, f"{int(np.sum(hit))} of {len(hit)}; {evidence}"
    )


# ------------------------------------------------------------------------------ claim 5 ----


def _primary(tables, th) -> dict:
    return {
        "target": th["bias1d_target"],
        "depth": th["bias1d_depth"],
        "momentum": float(th["bias1d_momentum"]),
        "iterations": th["bias1d_iterations"],
    }


def _primary5(tables, th) -> dict:
    return {**_primary(tables, th), "interval": th["bias1d_narrow"]}


def _drift_curve(cells: pd.DataFrame, setting: dict, column: str) -> str:
    """The median drift of this target, depth and interval at every (momentum, budget), in
    order of the optimiser's effective time."""
    same = select(cells, {k: setting[k] for k in ("target", "depth", "interval")})
    same = same[same["status"].eq("ok")]
    curve = same.groupby(["effective_time", "momentum"])[column].median()
    return ", ".join(f"{fmt(t)} (m {m:g}): {fmt(v)}" for (t, m), v in curve.items())


def claim5(tables, setting: dict, th) -> list[Part]:
    cells = _cells(tables)
    df = select(cells, setting)
    ok = df[df["status"].eq("ok")]
    if ok.empty:
        return [not_run("a", "live layers' biases", "no run that neither diverged nor collapsed")]
    live = ok[ok["live_layers"] > 0]
    parts = []
    for name, column, space in (
        ("a", "live_bias_drift_spacings_median", "biases"),
        ("b", "live_kink_drift_spacings_median", "kinks"),
    ):
        evidence = (
            f"{len(live)} runs with live layers (median {fmt(live['live_layers'].median())} of "
            f"{2 * int(setting['depth'])}){_left_out(df)}; median move by effective time lr / (1 - momentum) "
            f"x iterations: {_drift_curve(cells, setting, column)}"
        )
        if name == "b":
            evidence += (
                f"; the live kinks started a median {fmt(live['knot_distance_spacings_median'].median())} "
                "spacings from the nearest target knot"
            )
        else:
            evidence += (
                f"; all layers: median bias move {fmt(ok['bias_drift_spacings_median'].median())} spacings, "
                f"rank correlation of initial and final biases {fmt(ok['bias_rank_corr'].median())}, "
                f"fit lost by resetting the biases {fmt(ok['reset_biases_loss'].median())} of var(y)"
            )
        parts.append(
            _median_part(
                name,
                f"median over seeds of the median move of the live layers' {space} (data spacings)",
                live[column],
                th["claim5_max_move"],
                "<=",
                evidence,
                th,
            )
        )
    return parts


def _grid5(tables, th) -> list[dict]:
    keys = [*KEYS, "interval"]
    cells = _cells(tables)[keys].drop_duplicates().sort_values(keys)
    return [_typed(dict(zip(keys, row, strict=True))) for row in cells.itertuples(index=False)]


# ------------------------------------------------------------------------------ claim 6 ----


def _primary6(tables, th) -> dict:
    return {**_primary(tables, th), "narrow": th["bias1d_narrow"]}


def claim6(tables, setting: dict, th, kinds: bool = True) -> list[Part]:
    narrow_name = setting["narrow"]
    cells = _cells(tables)
    cell = select(cells, {k: v for k, v in setting.items() if k in KEYS})
    if cell.empty:
        return [not_run("a", "narrow vs wide", "no run at this setting")]
    wide_name = cell["interval"].iloc[int(np.argmax(cell["half_width"].to_numpy()))]
    narrow, wide = (cell[cell["interval"].eq(n)] for n in (narrow_name, wide_name))
    n_ok, w_ok = (d[d["status"].eq("ok")] for d in (narrow, wide))
    kind = f"{narrow_name} ({narrow['interval_kind'].iloc[0]})" if len(narrow) else narrow_name
    most, eps = th["most_fraction"], th["claim6_lipschitz_rel_tol"]
    parts = [
        _share_part(
            "a",
            f"{narrow_name}: share of seeds whose run misses a training point by more than the fit tolerance",
            n_ok["fail"],
            n_ok["seed"],
            most,
            ">",
            f"{kind}{_left_out(narrow)}",
            th,
        ),
        _share_part(
            "b",
            f"{wide_name}: share of seeds whose run misses a training point by more than the fit tolerance",
            w_ok["fail"],
            w_ok["seed"],
            most,
            "<",
            f"{wide_name}{_left_out(wide)}",
            th,
        ),
    ]
    missing = n_ok[n_ok["fail"]]
    parts.append(
        _share_part(
            "c",
            f"{narrow_name}, the runs that miss a point: share with Lipschitz constant <= the target's "
            f"x (1 + {fmt(eps)})",
            missing["lipschitz_ratio"] <= 1 + eps,
            missing["seed"],
            most,
            ">",
            f"median Lipschitz ratio {fmt(missing['lipschitz_ratio'].median())}",
            th,
        )
    )
    judged = missing[missing["pieces"] > 0]
    parts.append(
        _share_part(
            "d",
            f"{narrow_name}, the runs that miss a point: share whose every affine piece that misses a point "
            "stays within the fit tolerance of the least-squares line of the points it covers",
            judged["pieces_close"] == judged["pieces"],
            judged["seed"],
            most,
            ">",
            f"{int(judged['pieces_close'].sum())} of {int(judged['pieces'].sum())} such pieces close; "
            f"{len(missing) - len(judged)} missing runs with no piece of two or more points",
            th,
        )
    )
    if kinds and setting == _primary6(tables, th):
        parts[0].evidence += f"; at this setting, by kind of narrow interval: {_by_kind(tables, setting, th)}"
    return parts


def _by_kind(tables, setting: dict, th) -> str:
    """Claim 6's verdict for every narrow interval of this target, depth, momentum and budget,
    grouped by the interval's kind (position and knots inside)."""
    widest = _widest(tables)
    runs = main_grid(tables["bias1d/runs"])
    runs = runs[runs["target"].eq(setting["target"]) & ~runs["interval"].eq(widest)]
    out = []
    for kind, names in runs.groupby("interval_kind", sort=True)["interval"]:
        verdicts = [
            f"{n} {combine([p.verdict for p in claim6(tables, {**setting, 'narrow': n}, th, kinds=False)])}"
            for n in dict.fromkeys(names)
        ]
        out.append(f"{kind}: {', '.join(verdicts)}")
    return "; ".join(out)


def _widest(tables) -> str:
    runs = main_grid(tables["bias1d/runs"])
    return runs["interval"].iloc[int(np.argmax(runs["half_width"].to_numpy()))]


def _grid6(tables, th) -> list[dict]:
    cells = _cells(tables)
    narrow = sorted(set(cells["interval"]) - {_widest(tables)})
    keys = cells[list(KEYS)].drop_duplicates().sort_values(list(KEYS))
    return [
        _typed({**dict(zip(KEYS, row, strict=True)), "narrow": n})
        for row in keys.itertuples(index=False)
        for n in narrow
    ]


# ------------------------------------------------------------------------------ claim 9 ----

KEYS9 = ("target", "depth", "interval", "momentum", "iterations")
INPUTS9 = ["run_id", "seed", "target", "depth", "interval", "momentum", "noise_std", "method"]


def _comparison(tables) -> pd.DataFrame:
    runs = tables["bias1d/runs"]
    return runs[runs["comparison"]] if "comparison" in runs else runs.iloc[:0]


def _primary9(tables, th) -> dict:
    return {
        "target": th["bias1d_target"],
        "depth": th["claim9_depth"],
        "interval": th["bias1d_narrow"],
        "momentum": float(th["bias1d_momentum"]),
        "iterations": th["bias1d_iterations"],
    }


def matched_mse(progress: pd.DataFrame, pairs: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Each pair's runs at matched training MSE: the lowest MSE both runs reach within `budget`
    steps (on the traced steps of `progress`), each run taken at the first traced step where it
    reaches it. `pairs`: one row per pair with `run_id_gradient`, `run_id_kink_search`.
    Returns per pair `mse_matched` and `<lipschitz|test_mse>_matched_<method>`."""
    prog = progress[progress["step"] <= budget]
    lowest = prog.groupby("run_id")["mse"].min()
    level = np.maximum(
        pairs[f"run_id_{GRADIENT}"].map(lowest).to_numpy(), pairs[f"run_id_{SEARCH}"].map(lowest).to_numpy()
    )
    out = pd.DataFrame({"mse_matched": level}, index=pairs.index)
    for method in (GRADIENT, SEARCH):
        ids = pairs[f"run_id_{method}"]
        want = pd.DataFrame({"run_id": ids.to_numpy(), "level": level, "pair": pairs.index})
        reached = prog.merge(want, on="run_id")
        reached = reached[reached["mse"] <= reached["level"] * (1 + 1e-12)]
        first = reached.sort_values("step").groupby("pair").head(1).set_index("pair")
        for col in ("lipschitz", "test_mse"):
            out[f"{col}_matched_{method}"] = first[col]
    return out


def _pairs9(tables, setting: dict) -> tuple[pd.DataFrame, int]:
    """One row per (seed, noise level) with both methods at the setting: `<quantity>_<method>`
    after `iterations` steps (lipschitz, test_mse, final_mse), steps and seconds to reach the fit
    threshold within the budget (+inf if not), and the Lipschitz constant and test error at
    matched training MSE (`matched_mse`). Also the number of pairs left out because a run
    diverged or collapsed."""
    budget = setting["iterations"]
    runs = select(_comparison(tables), {k: v for k, v in setting.items() if k != "iterations"})
    snaps = tables["bias1d/snapshots"]
    snaps = snaps[snaps["iteration"].eq(budget)][["run_id", "status", "final_mse", "lipschitz", "test_mse"]]
    df = run_costs(runs, tables["bias1d/timing"])[[*INPUTS9, "steps_to_fit", "seconds_to_fit"]]
    df = df.merge(snaps, on="run_id")
    fitted = df["steps_to_fit"] <= budget
    df = df.assign(
        steps_to_fit=df["steps_to_fit"].where(fitted, np.inf),
        seconds_to_fit=df["seconds_to_fit"].where(fitted, np.inf),
        ok=df["status"].eq("ok"),
    )
    values = ["run_id", "final_mse", "lipschitz", "test_mse", "steps_to_fit", "seconds_to_fit", "ok"]
    wide = df.pivot_table(index=["seed", "noise_std"], columns="method", values=values, aggfunc="first")
    if wide.empty or not {GRADIENT, SEARCH} <= set(wide.columns.get_level_values(1)):
        return pd.DataFrame(), 0
    wide.columns = [f"{q}_{m}" for q, m in wide.columns]
    wide = wide.reset_index().dropna(subset=[f"ok_{GRADIENT}", f"ok_{SEARCH}"])
    ok = wide[f"ok_{GRADIENT}"].astype(bool) & wide[f"ok_{SEARCH}"].astype(bool)
    pairs = wide[ok].reset_index(drop=True)
    pairs = pairs.join(matched_mse(tables["bias1d/progress"], pairs, budget))
    return pairs, int((~ok).sum())


def speed_ratio(search: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Kink search / gradient only of a cost to fit (+inf: never fitted): 1 where neither run
    fitted, 0 where only the search did, +inf where only gradient-only training did."""
    search, gradient = np.asarray(search, dtype=float), np.asarray(gradient, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = search / gradient
    return np.where(np.isinf(search) & np.isinf(gradient), 1.0, ratio)


def _ratio_part(name, statistic, ratios, threshold, side, evidence, th, timing=False) -> Part:
    """A part on the median over seeds of a ratio in [0, +inf], judged with the distribution-free
    interval of r / (1 + r) (a monotone map of [0, inf] onto [0, 1]: the median and its
    interval map back exactly), so that an infinite ratio can still be decided."""
    ratios = pd.Series(ratios, dtype=float).dropna()
    if not len(ratios):
        return not_run(name, statistic, f"no pair; {evidence}")
    share = np.where(np.isinf(ratios), 1.0, ratios / (1 + ratios))
    est, low, high, achieved = median_interval(share, th["level"])
    if achieved < th["level"]:
        need = minimum_seeds(th["level"], "median_interval")
        return not_run(
            name, statistic, f"{len(ratios)} seeds, fewer than the {need} a median needs; {evidence}"
        )
    back = lambda r: math.inf if r >= 1 else r / (1 - r)  # noqa: E731
    verdict, flip = judge(low, high, threshold / (1 + threshold), side)
    return Part(
        name,
        statistic,
        back(est),
        back(low),
        back(high),
        threshold,
        side,
        evidence,
        verdict=verdict,
        flip_threshold=back(flip),
        timing_dependent=timing,
    )


def _per_seed(pairs: pd.DataFrame, ratio: np.ndarray) -> pd.Series:
    """One ratio per seed: the geometric mean over the seed's pairs (its noise levels)."""
    with np.errstate(divide="ignore"):
        logs = pd.Series(np.log(ratio), index=pairs.index)
    return np.exp(logs.groupby(pairs["seed"]).mean())


def claim9(tables, setting: dict, th) -> list[Part]:
    pairs, dropped = _pairs9(tables, setting)
    if pairs.empty:
        return [
            not_run("a", "kink search vs gradient only", "no pair of comparison runs that did not diverge")
        ]
    factor = th["claim9_factor"]
    g, s = GRADIENT, SEARCH
    left_out = f"; {dropped} pairs with a diverged or collapsed run left out" if dropped else ""
    timing = tables["bias1d/timing"]
    cost = timing.loc[timing["depth"].eq(setting["depth"]), "search_cost_steps"]
    noises = sorted(set(pairs["noise_std"]))
    parts = []
    for name, col, word in (("a", "steps_to_fit", "gradient steps"), ("b", "seconds_to_fit", "seconds")):
        totals = pairs.groupby("seed")[[f"{col}_{g}", f"{col}_{s}"]].sum()
        ratio = pd.Series(speed_ratio(totals[f"{col}_{s}"], totals[f"{col}_{g}"]), index=totals.index)
        fitted = {m: int(np.isfinite(pairs[f"{col}_{m}"]).sum()) for m in (g, s)}
        evidence = (
            f"{len(totals)} seeds x noise levels {noises}{left_out}; fitted within {setting['iterations']} "
            f"steps: gradient only {fitted[g]}, kink search {fitted[s]} of {len(pairs)} runs; median "
            f"{word} to fit {fmt(pairs[f'{col}_{g}'].median())} vs {fmt(pairs[f'{col}_{s}'].median())} "
            "(never: inf)"
        )
        if name == "b":
            evidence += (
                f"; one search costs {fmt(cost.iloc[0] if len(cost) else np.nan)} gradient steps per run"
            )
        parts.append(
            _ratio_part(
                name,
                f"median over seeds of the {word} to reach the fit threshold (summed over the seed's noise "
                "levels) with kink search / gradient only",
                ratio,
                1 / factor,
                "<",
                evidence,
                th,
                timing=name == "b",
            )
        )
    noisy, clean = pairs[pairs["noise_std"] > 0], pairs[pairs["noise_std"] == 0]
    for name, col, when, word in (
        ("c", "lipschitz", "", "Lipschitz constant"),
        ("d", "test_mse", "", "test error"),
        ("e", "lipschitz", "_matched", "Lipschitz constant"),
        ("f", "test_mse", "_matched", "test error"),
    ):
        at = f"after {setting['iterations']} steps each" if not when else "at matched training MSE"
        statistic = f"noisy labels: median over seeds of the {word} with kink search / gradient only, {at}"
        if noisy.empty:
            parts.append(not_run(name, statistic, "no pair with noisy labels (noise_std > 0)"))
            continue
        search, gradient = f"{col}{when}_{s}", f"{col}{when}_{g}"
        ratio = noisy[search] / noisy[gradient]
        contrast = clean[search] / clean[gradient]
        evidence = (
            f"{len(noisy)} noisy pairs; median {word}: kink search {fmt(noisy[search].median())}, "
            f"gradient only {fmt(noisy[gradient].median())}; noise-free pairs: median ratio "
            f"{fmt(contrast.median())}"
        )
        if when:
            evidence += f"; matched MSE median {fmt(noisy['mse_matched'].median())}"
        parts.append(
            _ratio_part(name, statistic, _per_seed(noisy, ratio.to_numpy()), factor, ">", evidence, th)
        )
    return parts


def _grid9(tables, th) -> list[dict]:
    runs = _comparison(tables)
    if runs.empty:
        return []
    its = sorted(tables["bias1d/snapshots"]["iteration"].unique())
    cells = runs[list(KEYS9[:-1])].drop_duplicates().sort_values(list(KEYS9[:-1]))
    return [
        _typed({**dict(zip(KEYS9[:-1], row, strict=True)), "iterations": it})
        for row in cells.itertuples(index=False)
        for it in its
    ]


TABLES = ("bias1d/runs", "bias1d/snapshots")
TABLES9 = (*TABLES, "bias1d/progress", "bias1d/timing")
CLAIMS = [
    Claim(5, TEXT[5], TABLES, claim5, _primary5, _grid5),
    Claim(6, TEXT[6], TABLES, claim6, _primary6, _grid6),
    Claim(9, TEXT[9], TABLES9, claim9, _primary9, _grid9),
]
