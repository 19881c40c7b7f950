"""Claims 5 and 6 (docs/claims.md), judged on the 1-D study's snapshots.

A setting is one cell of the 1-D grid: target, depth, momentum, iteration budget (a snapshot
of the same runs) and, for claim 5, the bias init interval; claim 6 compares one narrow
interval with the wide one. The headline verdict is at the primary setting of
`report.claims` (the paper's piecewise-affine target; the sine target, ours, only counts in
the robustness grid). Intervals resample seeds (a seed fixes the training points and the
uniform draws behind every initial parameter). Diverged runs are left out of every share
and counted in the evidence.
"""

from __future__ import annotations

import pandas as pd

from pipeline.claims import Claim, Part, fmt, not_run, select
from pipeline.stats import bootstrap_median, bootstrap_share, bootstrap_share_difference

TEXT = {
    5: "Biases move little during training (relative drift small, much smaller than weights').",
    6: "Narrow bias init gives estimates with Lipschitz constant <= the target's and imperfect fit; "
    "wide init fits the data.",
}
KEYS = ("target", "depth", "momentum", "iterations")


def _cells(tables) -> pd.DataFrame:
    """Snapshots joined with their runs' inputs, `iterations` = the snapshot's iteration."""
    runs = tables["bias1d"][["run_id", "seed", "target", "depth", "interval", "half_width", "momentum"]]
    snaps = tables["bias1d_snapshots"].drop(columns=["target_lipschitz"], errors="ignore")
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


TABLES = ("bias1d", "bias1d_snapshots")
CLAIMS = [
    Claim(5, TEXT[5], TABLES, claim5, _primary, _grid5),
    Claim(6, TEXT[6], TABLES, claim6, _primary, _grid6),
]
