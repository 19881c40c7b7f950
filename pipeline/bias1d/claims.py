"""Claims 5, 6 and 9 (docs/claims.md), judged on the 1-D study's snapshots.

Claims 5 and 6 read the main grid's runs (gradient-only, the main noise level). A setting is
one cell of the 1-D grid: target, depth, momentum, iteration budget (a snapshot of the same
runs) and, for claim 5, the bias init interval; claim 6 compares one narrow interval with
the wide one. The headline verdict is at the primary setting of `report.claims` (the paper's
piecewise-affine target; the sine target, ours, only counts in the robustness grid).

Claim 9 (ours) reads the comparison of bias updates: in a setting (target, depth, init
interval, momentum, iteration budget) each seed and noise level gives a pair of runs, one
gradient-only and one with kink searches, from the same initial parameters and data.

Intervals resample seeds (a seed fixes the training points and the uniform draws behind
every initial parameter). Diverged runs are left out of every share and counted in the
evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.bias1d.summary import GRADIENT, SEARCH, equal_time, main_grid, run_costs
from pipeline.claims import Claim, Part, fmt, not_run, select
from pipeline.stats import bootstrap_median, bootstrap_share, bootstrap_share_difference

TEXT = {
    5: "Biases move little during training (relative drift small, much smaller than weights').",
    6: "Narrow bias init gives estimates with Lipschitz constant <= the target's and imperfect fit; "
    "wide init fits the data.",
    9: "Ours, beyond the paper: non-gradient bias updates (exact kink search) fit faster, but raise "
    "the Lipschitz constant and the test error on noisy data.",
}
KEYS = ("target", "depth", "momentum", "iterations")


def _cells(tables) -> pd.DataFrame:
    """Snapshots of the main grid's runs joined with their inputs, `iterations` = the snapshot's
    iteration."""
    runs = main_grid(tables["bias1d/runs"])[
        ["run_id", "seed", "target", "depth", "interval", "half_width", "momentum"]
    ]
    snaps = tables["bias1d/snapshots"].drop(columns=["target_lipschitz"], errors="ignore")
    return snaps.merge(runs, on="run_id").rename(columns={"iteration": "iterations"})


def _primary(tables, th) -> dict:
    return {
        "target": th["bias1d_target"],
        "depth": th["bias1d_depth"],
        "momentum": float(th["bias1d_momentum"]),
        "iterations": th["bias1d_iterations"],
    }


def _boot(th, *key) -> dict:
    return {"n_boot": th["bootstrap"], "level": th["level"], "key": key}


def _diverged(df: pd.DataFrame) -> str:
    n = int(df["status"].eq("diverged").sum())
    return f"; {n} diverged runs left out" if n else ""


# ------------------------------------------------------------------------------ claim 5 ----


def claim5(tables, setting: dict, th) -> list[Part]:
    df = select(_cells(tables), setting)
    ok = df[df["status"].eq("ok")]
    if ok.empty:
        return [not_run("a", "kinks", "no run that did not diverge")]
    key = tuple(setting.values())
    moved = ok["kinks_moved_lt_spacing"] / ok["kinks_active"].where(ok["kinks_active"] > 0)
    has = ok["kinks_active"] > 0
    est, lo, hi = bootstrap_share(
        moved[has], ok.loc[has, "seed"], weight=ok.loc[has, "kinks_active"], **_boot(th, "claim5a", *key)
    )
    parts = [
        Part(
            "a",
            "share of the kinks inside the data interval at init that moved less than one data spacing",
            est,
            lo,
            hi,
            th["most_fraction"],
            ">",
            f"{int(ok['kinks_active'].sum())} active kinks in {len(ok)} runs; median kink move "
            f"{fmt(ok['kink_drift_spacings_median'].median())} spacings "
            f"({fmt(ok['kink_drift_range_median'].median())} of the data range), median bias move "
            f"{fmt(ok['bias_drift_spacings_median'].median())} spacings{_diverged(df)}",
        )
    ]
    est, lo, hi = bootstrap_median(ok["bias_rank_corr"], ok["seed"], **_boot(th, "claim5b", *key))
    parts.append(
        Part(
            "b",
            "median over runs of the rank correlation between initial and final biases",
            est,
            lo,
            hi,
            th["rank_correlation_min"],
            ">=",
            f"{len(ok)} runs",
        )
    )
    est, lo, hi = bootstrap_median(ok["reset_biases_loss"], ok["seed"], **_boot(th, "claim5c", *key))
    parts.append(
        Part(
            "c",
            "median over runs of the fit lost by resetting the biases to their initial values "
            "((MSE after reset - final MSE) / variance of the labels)",
            est,
            lo,
            hi,
            th["reset_loss_max"],
            "<=",
            f"median MSE final {fmt(ok['final_mse'].median())}, after resetting the biases "
            f"{fmt(ok['mse_reset_biases'].median())}, the weights {fmt(ok['mse_reset_weights'].median())}; "
            "weights/biases relative drift (each over its init "
            f"width) {fmt(ok['weight_to_bias_drift_rel'].median())}",
        )
    )
    return parts


def _grid5(tables, th) -> list[dict]:
    cells = _cells(tables)[[*KEYS, "interval"]].drop_duplicates().sort_values([*KEYS, "interval"])
    return [_typed(dict(zip([*KEYS, "interval"], row, strict=True))) for row in cells.itertuples(index=False)]


def _typed(setting: dict) -> dict:
    return {
        k: float(v) if k == "momentum" else int(v) if k in ("depth", "iterations") else v
        for k, v in setting.items()
    }


# ------------------------------------------------------------------------------ claim 6 ----


def claim6(tables, setting: dict, th) -> list[Part]:
    narrow_name = setting.get("narrow", th["bias1d_narrow"])
    cell = select(_cells(tables), {k: v for k, v in setting.items() if k != "narrow"})
    wide_name = cell.loc[cell["half_width"].idxmax(), "interval"] if len(cell) else None
    narrow, wide = (cell[cell["interval"].eq(n)] for n in (narrow_name, wide_name))
    key = tuple(setting.values())
    n_ok, w_ok = narrow[narrow["status"].eq("ok")], wide[wide["status"].eq("ok")]
    if n_ok.empty or w_ok.empty:
        return [
            not_run(
                "a", "narrow vs wide", f"no non-diverged runs of {narrow_name} and of the widest interval"
            )
        ]
    most = th["most_fraction"]
    parts = []
    for name, runs, side, word in (("a", n_ok, ">", narrow_name), ("b", w_ok, "<", wide_name)):
        est, lo, hi = bootstrap_share(runs["fail"], runs["seed"], **_boot(th, "claim6", name, *key))
        parts.append(
            Part(
                name,
                f"{word}: share of runs missing some training point by more than the fit tolerance",
                est,
                lo,
                hi,
                most,
                side,
                f"{int(runs['fail'].sum())} of {len(runs)} runs{_diverged(narrow if name == 'a' else wide)}",
            )
        )
    est, lo, hi = bootstrap_share_difference(
        n_ok["fail"], n_ok["seed"], w_ok["fail"], w_ok["seed"], **_boot(th, "claim6c", *key)
    )
    parts.append(
        Part(
            "c",
            f"share of runs that miss a point: {narrow_name} minus {wide_name}",
            est,
            lo,
            hi,
            0.0,
            ">",
            "paired by seed",
        )
    )
    missing = n_ok[n_ok["fail"] & (n_ok["regions"] > 0)]
    if missing.empty:
        parts.append(
            not_run(
                "d",
                "regions the estimate misses",
                f"no {narrow_name} run misses two consecutive training points",
            )
        )
    else:
        est, lo, hi = bootstrap_share(
            missing["regions_close"] / missing["regions"],
            missing["seed"],
            weight=missing["regions"],
            **_boot(th, "claim6d", *key),
        )
        parts.append(
            Part(
                "d",
                f"{narrow_name}: share of missed regions (>= 2 consecutive points off by more than the "
                "fit tolerance) where the estimate's slope stays within 2 tolerances (across the region) "
                "of the points' least-squares slope",
                est,
                lo,
                hi,
                most,
                ">",
                f"{int(missing['regions'].sum())} regions in {len(missing)} runs; median Lipschitz ratio of "
                f"these runs {fmt(missing['lipschitz_ratio'].median())}",
            )
        )
    return parts


def _grid6(tables, th) -> list[dict]:
    cells = _cells(tables)
    widest = cells.loc[cells["half_width"].idxmax(), "interval"]
    narrow = sorted(set(cells["interval"]) - {widest})
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


def _pairs9(tables, setting: dict) -> tuple[pd.DataFrame, int]:
    """One row per (seed, noise level) with both methods at the setting: `<quantity>_<method>`
    after `iterations` steps (final_mse, lipschitz, test_mse, steps_to_fit, seconds_to_fit)
    and at the gradient-only runs' wall time (`mse_time_<method>`, `step_time_<method>`).
    Also the number of pairs left out because a run diverged."""
    budget = setting["iterations"]
    runs = select(_comparison(tables), {k: v for k, v in setting.items() if k != "iterations"})
    snaps = tables["bias1d/snapshots"]
    snaps = snaps[snaps["iteration"].eq(budget)][["run_id", "status", "final_mse", "lipschitz", "test_mse"]]
    df = run_costs(runs, tables["bias1d/timing"])[[*INPUTS9, "steps_to_fit", "seconds_to_fit"]]
    df = df.merge(snaps, on="run_id")
    eq = equal_time(runs, tables["bias1d/progress"], tables["bias1d/timing"], budget)
    df = df.merge(
        eq[["run_id", "step", "mse"]].rename(columns={"step": "step_time", "mse": "mse_time"}), on="run_id"
    )
    fitted = df["steps_to_fit"] <= budget
    df = df.assign(
        steps_to_fit=df["steps_to_fit"].where(fitted, np.inf),
        seconds_to_fit=df["seconds_to_fit"].where(fitted, np.inf),
        ok=df["status"].eq("ok"),
    )
    wide = df.pivot_table(
        index=["seed", "noise_std"],
        columns="method",
        values=[
            "final_mse",
            "lipschitz",
            "test_mse",
            "steps_to_fit",
            "seconds_to_fit",
            "mse_time",
            "step_time",
            "ok",
        ],
        aggfunc="first",
    )
    if wide.empty or not {GRADIENT, SEARCH} <= set(wide.columns.get_level_values(1)):
        return pd.DataFrame(), 0
    wide.columns = [f"{q}_{m}" for q, m in wide.columns]
    wide = wide.reset_index().dropna(subset=[f"ok_{GRADIENT}", f"ok_{SEARCH}"])
    ok = wide[f"ok_{GRADIENT}"].astype(bool) & wide[f"ok_{SEARCH}"].astype(bool)
    return wide[ok].reset_index(drop=True), int((~ok).sum())


def _method_line(pairs: pd.DataFrame, method: str, word: str) -> str:
    fitted = np.isfinite(pairs[f"steps_to_fit_{method}"])
    return (
        f"{word}: median training MSE {fmt(pairs[f'final_mse_{method}'].median())}, fitted "
        f"{int(fitted.sum())} of {len(pairs)} (median steps to fit "
        f"{fmt(pairs[f'steps_to_fit_{method}'].median())}; never counts as inf), median test MSE "
        f"{fmt(pairs[f'test_mse_{method}'].median())}"
    )


def claim9(tables, setting: dict, th) -> list[Part]:
    pairs, dropped = _pairs9(tables, setting)
    if pairs.empty:
        return [
            not_run("a", "kink search vs gradient only", "no pair of comparison runs that did not diverge")
        ]
    key = tuple(setting.values())
    factor, floor = th["claim9_factor"], th["claim9_mse_floor"]
    g, s = GRADIENT, SEARCH
    left_out = f"; {dropped} pairs with a diverged run left out" if dropped else ""
    timing = tables["bias1d/timing"]
    cost = timing.loc[timing["depth"].eq(setting["depth"]), "search_cost_steps"]
    parts = []
    for name, col, word in (
        ("a", "final_mse", f"after {setting['iterations']} gradient steps each (equal gradient evaluations)"),
        ("b", "mse_time", "at the wall time of the gradient-only run's budget (equal wall time)"),
    ):
        ratio = np.maximum(pairs[f"{col}_{s}"], floor) / np.maximum(pairs[f"{col}_{g}"], floor)
        est, lo, hi = bootstrap_median(ratio, pairs["seed"], **_boot(th, "claim9", name, *key))
        evidence = f"{len(pairs)} pairs (seeds x noise levels {sorted(set(pairs['noise_std']))}){left_out}; "
        if name == "a":
            evidence += f"{_method_line(pairs, g, 'gradient only')}; {_method_line(pairs, s, 'kink search')}"
        else:
            evidence += (
                f"one search costs {fmt(cost.iloc[0] if len(cost) else np.nan)} gradient steps per run; "
                f"kink-search runs taken at median step {fmt(pairs[f'step_time_{s}'].median())}, "
                f"median training MSE {fmt(pairs[f'mse_time_{s}'].median())} vs "
                f"{fmt(pairs[f'mse_time_{g}'].median())}"
            )
        parts.append(
            Part(
                name,
                f"median over pairs (same seed and noise level) of training MSE with kink search / "
                f"gradient only, {word}",
                est,
                lo,
                hi,
                1 / factor,
                "<",
                evidence,
                timing_dependent=name == "b",
            )
        )
    noisy = pairs[pairs["noise_std"] > 0]
    for name, col, word in (("c", "lipschitz", "Lipschitz constant"), ("d", "test_mse", "test error")):
        statistic = (
            f"noisy data: median over pairs of the {word} with kink search / gradient only, after "
            f"{setting['iterations']} steps each"
        )
        if noisy.empty:
            parts.append(not_run(name, statistic, "no pair with noisy labels (noise_std > 0)"))
            continue
        ratio = noisy[f"{col}_{s}"] / noisy[f"{col}_{g}"]
        est, lo, hi = bootstrap_median(ratio, noisy["seed"], **_boot(th, "claim9", name, *key))
        parts.append(
            Part(
                name,
                statistic,
                est,
                lo,
                hi,
                factor,
                ">",
                f"{len(noisy)} noisy pairs; median {word}: kink search {fmt(noisy[f'{col}_{s}'].median())}, "
                f"gradient only {fmt(noisy[f'{col}_{g}'].median())}",
            )
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
    Claim(5, TEXT[5], TABLES, claim5, _primary, _grid5),
    Claim(6, TEXT[6], TABLES, claim6, _primary, _grid6),
    Claim(9, TEXT[9], TABLES9, claim9, _primary9, _grid9),
]
