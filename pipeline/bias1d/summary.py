"""The 1-D study's aggregate step (no torch): `summary(tables)`, the claims' robustness cells,
the comparison of bias updates at equal steps and equal wall time."""

from __future__ import annotations

import numpy as np
import pandas as pd

GRADIENT, SEARCH = "gradient", "kink_search"
METHODS = (GRADIENT, SEARCH)


CELL = ["target", "interval", "half_width", "depth", "momentum", "lr", "iterations"]


def main_grid(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the main grid (claims 5-6); tables without the column hold only those."""
    return runs[runs["main_grid"]] if "main_grid" in runs else runs


def robustness(snapshots: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the robustness grid (target, interval, depth, momentum, iteration budget)
    of the main grid's runs: the interval's bounds `low`, `high` and `kind` (with the target's
    `knots_inside`), the optimiser's `effective_time` (lr / (1 - momentum) x iterations); runs,
    diverged, collapsed; fail_fraction (share of non-diverged runs missing some training point
    by more than the fit tolerance) and miss_fraction (the same among the runs that neither
    diverged nor collapsed: claim 6's share); lipschitz_ok_fraction (share of non-diverged runs
    whose Lipschitz constant is at most the target's, up to 1e-6 relative); medians over the
    cell's runs of the final MSE, the kink drift (all kinks in the data at init), the live
    layers' bias and kink drift and their kinks' distance to the nearest target knot (data
    spacings)."""
    runs = main_grid(runs)
    extra = {"init_low": "low", "init_high": "high", "interval_kind": "kind", "knots_inside": "knots_inside"}
    inputs = runs[["run_id", *[c for c in CELL if c != "iterations"], *extra]]
    df = snapshots.merge(inputs, on="run_id").rename(columns={"iteration": "iterations", **extra})
    ok = df["status"].ne("diverged")
    fine = df["status"].eq("ok")
    df = df.assign(
        diverged=~ok,
        collapsed=df["status"].eq("collapsed"),
        fail_ok=df["fail"].where(ok),
        miss=df["fail"].where(fine),
        lip_ok=(df["lipschitz_ratio"] <= 1 + 1e-6).where(ok),
    )
    g = df.groupby([*CELL, *extra.values(), "effective_time"], sort=True, dropna=False)
    out = g.size().rename("runs").to_frame()
    out["diverged"] = g["diverged"].sum().astype(int)
    out["collapsed"] = g["collapsed"].sum().astype(int)
    out["fail_fraction"] = g["fail_ok"].mean()
    out["miss_fraction"] = g["miss"].mean()
    out["lipschitz_ok_fraction"] = g["lip_ok"].mean()
    out["median_final_mse"] = g["final_mse"].median()
    out["median_kink_drift_spacings"] = g["kink_drift_spacings_median"].median()
    out["median_live_bias_drift_spacings"] = g["live_bias_drift_spacings_median"].median()
    out["median_live_kink_drift_spacings"] = g["live_kink_drift_spacings_median"].median()
    out["median_knot_distance_spacings"] = g["knot_distance_spacings_median"].median()
    return out.reset_index()


# ---------------------------------------------------------------- comparison of bias updates -------

COMPARISON = ["target", "depth", "interval", "momentum", "noise_std", "method"]


def run_costs(runs: pd.DataFrame, timing: pd.DataFrame) -> pd.DataFrame:
    """`runs` with each run's time (seconds, per run: `timing`'s per-run costs of its depth):
    `seconds` for its whole budget, `seconds_to_fit` up to `steps_to_fit` (NaN if never).

    A run's time after t gradient steps and n searches is t s_step + n s_search, with s_step
    (s_search) the shard's wall seconds of all gradient steps (searches) over the runs of the
    batch that took them and the number of steps (searches)."""
    cost = timing.drop_duplicates("depth").set_index("depth")
    step_s = runs["depth"].map(cost["seconds_per_run_step"])
    search_s = runs["depth"].map(cost["seconds_per_run_search"]).fillna(0.0)
    every = runs["depth"].map(cost["search_every"])
    is_search = runs["method"].eq(SEARCH)
    fit_searches = np.where(is_search, np.floor(runs["steps_to_fit"] / every), 0.0)
    return runs.assign(
        seconds=runs["iterations"] * step_s + runs["searches"] * search_s,
        seconds_to_fit=runs["steps_to_fit"] * step_s + fit_searches * search_s,
    )


def equal_time(runs: pd.DataFrame, progress: pd.DataFrame, timing: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Each comparison run's row of `progress` at equal wall time: the last traced step whose
    time (t s_step + n s_search, as in `run_costs`) is within the time the gradient-only runs
    of its depth take for `budget` steps (budget s_step). A gradient-only run is taken at
    `budget` itself; a run with searches earlier, as its searches take time too."""
    cost = timing.drop_duplicates("depth").set_index("depth")
    df = progress.merge(runs[["run_id", "depth"]], on="run_id")
    step_s = df["depth"].map(cost["seconds_per_run_step"])
    search_s = df["depth"].map(cost["seconds_per_run_search"]).fillna(0.0)
    seconds = df["step"] * step_s + df["searches"] * search_s
    df = df.assign(seconds=seconds)[(df["step"] <= budget) & (seconds <= budget * step_s * (1 + 1e-9))]
    return df.sort_values(["run_id", "step"]).groupby("run_id", sort=False).tail(1).drop(columns="depth")


def updates_summary(runs: pd.DataFrame, progress: pd.DataFrame, timing: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the comparison (target, depth, interval, momentum, noise level,
    method), medians over its runs: at the end of the budget (equal gradient evaluations) and
    at the wall time of the gradient-only runs' budget (`equal_time`), steps and seconds to fit
    (runs that never fit count as +inf), and the measured costs."""
    comp = runs[runs["comparison"]] if "comparison" in runs else runs.iloc[:0]
    if comp.empty:
        return pd.DataFrame(columns=[*COMPARISON, "runs"])
    comp = run_costs(comp, timing)
    budget = int(comp["iterations"].max())
    eq = equal_time(comp, progress, timing, budget).set_index("run_id")
    at_time = eq[["step", "mse", "test_mse", "lipschitz_ratio"]].add_suffix("_equal_time")
    comp = comp.join(at_time, on="run_id")
    ok = comp["status"].eq("ok")
    comp = comp.assign(
        diverged=~ok,
        fitted=comp["steps_to_fit"].notna(),
        steps_to_fit=comp["steps_to_fit"].fillna(np.inf),
        seconds_to_fit=comp["seconds_to_fit"].fillna(np.inf),
    )
    g = comp.groupby(COMPARISON, sort=True)
    out = g.size().rename("runs").to_frame()
    out["diverged"] = g["diverged"].sum().astype(int)
    out["fitted_share"] = g["fitted"].mean()
    cols = [
        "steps_to_fit",
        "seconds_to_fit",
        "final_mse",
        "test_mse",
        "lipschitz_ratio",
        "step_equal_time",
        "mse_equal_time",
        "test_mse_equal_time",
        "lipschitz_ratio_equal_time",
        "kink_moves",
        "seconds",
    ]
    out = out.join(g[cols].median().add_prefix("median_"))
    cost = timing.drop_duplicates("depth").set_index("depth")
    out = out.reset_index()
    for col in ("seconds_per_run_step", "seconds_per_run_search", "search_cost_steps"):
        out[col] = out["depth"].map(cost[col])
    return out


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: medians per (target, depth, interval, momentum, noise level, method) at the end
    of training; `robustness`: the claims' grid cells (see `robustness`); `updates`: the
    comparison of bias updates (see `updates_summary`)."""
    runs = tables["runs"]
    cols = [
        "final_mse",
        "fitted_fraction",
        "lipschitz_ratio",
        "test_mse",
        "bias_drift_spacings_median",
        "kink_drift_spacings_median",
        "bias_rank_corr",
        "reset_biases_loss",
        "weight_drift_rel_median",
    ]
    g = runs.groupby(["target", "depth", "interval", "momentum", "noise_std", "method"], sort=False)
    out = g[cols].median().add_prefix("median_")
    out["runs"] = g.size()
    out["diverged"] = g["status"].apply(lambda s: int((s == "diverged").sum()))
    out["collapsed"] = g["status"].apply(lambda s: int((s == "collapsed").sum()))
    out["fail_fraction"] = g["fail"].mean()
    return {
        "summary": out.reset_index(),
        "robustness": robustness(tables["snapshots"], runs),
        "updates": updates_summary(runs, tables["progress"], tables["timing"]),
    }
