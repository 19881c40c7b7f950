"""The 1-D bias study (docs/science.md section 4): config slice -> trained pairs -> tables.

One shard = one depth: every target x bias-init interval x momentum x seed trained at once,
as one batch. Run `"{target}-L{depth}-{interval}-m{momentum}-s{seed}"` uses seed value
`seed_offset + k` (k = 0..seeds-1). The initial weights and the uniform draws behind the
biases depend on (depth, seed) only, so the runs of one seed differ across intervals only by
where the same draws land (b = low + (high - low) u) and across momenta not at all at the
start; the training points depend on (target, seed) only.

Every run is measured at its end (table `runs`) and at each iteration of `snapshots` (table
`snapshots`, one row per run and iteration): the iteration budget is a setting of the
claims' robustness grid without extra runs. What is measured (`measure`): the fit, the exact
Lipschitz constant, how far biases and kinks moved (in data spacings and in units of the
data range), whether the biases kept their rank order, how much of the fit is lost when the
biases (or the weights) are reset to their initial values, and, where the estimate misses
training points, how close it stays to the least-squares line of the points it misses.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import torch

from pipeline.bias1d import model as nets
from pipeline.errors import UserError
from pipeline.seeds import numpy_rng
from pipeline.tables import log_steps

TARGET_KINDS = ("piecewise", "sine")


# ---------------------------------------------------------------- targets and data -------------------


def target_values(cfg: dict, name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if name == "piecewise":
        return nets.piecewise_values(cfg["piecewise"]["knots_x"], cfg["piecewise"]["knots_y"], x)
    if name == "sine":
        s, d = cfg["sine"], cfg["data"]
        omega = 2 * math.pi * s["cycles"] / (d["high"] - d["low"])
        return s["amplitude"] * np.sin(omega * (x - d["low"]) + s["phase"])
    raise UserError(f"Unknown bias1d target '{name}'; use one of {', '.join(TARGET_KINDS)}.")


def target_lipschitz(cfg: dict, name: str) -> float:
    """Lipschitz constant of the target on the data interval (exact for both kinds)."""
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    if name == "piecewise":
        kx = np.asarray(cfg["piecewise"]["knots_x"], dtype=np.float64)
        pts = np.unique(np.clip(np.concatenate([[lo, hi], kx]), lo, hi))
        v = target_values(cfg, name, pts)
        return float(np.max(np.abs(np.diff(v) / np.diff(pts))))
    s = cfg["sine"]
    omega = 2 * math.pi * s["cycles"] / (hi - lo)
    # max |A omega cos(omega (x - lo) + phase)| on [lo, hi]: 1 if the phase passes a multiple of pi
    t0, t1 = s["phase"], omega * (hi - lo) + s["phase"]
    if math.floor(t1 / math.pi) >= math.ceil(t0 / math.pi):
        peak = 1.0
    else:
        peak = max(abs(math.cos(t0)), abs(math.cos(t1)))
    return abs(s["amplitude"]) * omega * peak


def training_points(cfg: dict, target: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs (sorted) and labels of one (target, seed)."""
    d = cfg["data"]
    rng = numpy_rng("bias1d", "data", target, seed)
    if d["spacing"] == "even":
        x = np.linspace(d["low"], d["high"], d["points"])
    else:
        x = np.sort(rng.uniform(d["low"], d["high"], d["points"]))
    y = target_values(cfg, target, x) + d["noise_std"] * rng.standard_normal(d["points"])
    return x, y


# ---------------------------------------------------------------- runs and init ----------------------


def seeds(cfg: dict) -> list[int]:
    return [cfg["seed_offset"] + k for k in range(cfg["seeds"])]


def plan(cfg: dict, depth: int, targets=None) -> pd.DataFrame:
    """One row per run of the shard of `depth` (all targets unless given): inputs only."""
    rows = []
    grid = itertools.product(
        targets or cfg["targets"], cfg["intervals"], cfg["optimizer"]["momenta"], seeds(cfg)
    )
    for target, iv, momentum, seed in grid:
        rows.append(
            {
                "run_id": f"{target}-L{depth}-{iv['name']}-m{momentum:g}-s{seed}",
                "seed": seed,
                "target": target,
                "depth": depth,
                "interval": iv["name"],
                "init_low": float(iv["low"]),
                "init_high": float(iv["high"]),
                "half_width": (float(iv["high"]) - float(iv["low"])) / 2,
                "momentum": float(momentum),
                "lr": float(cfg["optimizer"]["lr"]),
            }
        )
    return pd.DataFrame(rows)


def initial_params(cfg: dict, runs: pd.DataFrame) -> nets.PairParams:
    """Initial parameters of every run in `runs` (one row each), independent of batching."""
    depth = int(runs["depth"].iloc[0])
    p = nets.PairParams.empty(depth, len(runs))
    wl, wh = cfg["weight_init"]["low"], cfg["weight_init"]["high"]
    for r, row in enumerate(runs.itertuples()):
        rng = numpy_rng("bias1d", "init", depth, row.seed)
        w = rng.uniform(wl, wh, size=(depth, 2))
        u = rng.uniform(0.0, 1.0, size=(depth, 2))
        p.w[:, r] = torch.from_numpy(w)
        p.b[:, r] = torch.from_numpy(row.init_low + (row.init_high - row.init_low) * u)
    p.a.fill_(cfg["output_scale_init"])
    p.c.fill_(cfg["offset_init"])
    return p


# ---------------------------------------------------------------- one shard --------------------------


def snapshot_steps(cfg: dict) -> list[int]:
    """The iterations at which every run is measured: `snapshots` up to the budget, and the end."""
    its = cfg["optimizer"]["iterations"]
    return sorted({s for s in cfg["snapshots"] if s <= its} | {its})


def train(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray):
    """Train the runs (rows of `runs`, inputs `xs`/labels `ys` `[R, N]`).

    Returns the initial parameters, {iteration: parameters} at every snapshot (the last is
    the end) and the MSE curves.
    """
    opt = cfg["optimizer"]
    p = initial_params(cfg, runs)
    init = p.numpy()
    x = torch.from_numpy(np.ascontiguousarray(xs))
    y = torch.from_numpy(np.ascontiguousarray(ys))
    momentum = torch.tensor(runs["momentum"].to_numpy())
    steps = log_steps(opt["iterations"], cfg["curve_points"])
    _, curves, snaps = nets.train_nesterov(
        p, x, y, opt["lr"], momentum, opt["iterations"], steps, snapshot_steps(cfg)
    )
    return init, snaps, curves


def run_shard(cfg: dict, depth: int, targets=None) -> dict[str, pd.DataFrame]:
    """Train every run of one depth (all targets unless given) as one batch and measure it.

    Returns the shard's tables: runs (at the end), snapshots, estimates, layers, curves,
    points (training data per target and seed) and truth (each target on the dense grid).
    """
    targets = list(targets or cfg["targets"])
    runs = plan(cfg, depth, targets)
    data = {(t, s): training_points(cfg, t, s) for t in targets for s in seeds(cfg)}
    keys = list(zip(runs["target"], runs["seed"], strict=True))
    xs = np.stack([data[k][0] for k in keys])
    ys = np.stack([data[k][1] for k in keys])
    init, snaps, curves = train(cfg, runs, xs, ys)
    last = max(snaps)
    final = snaps[last]
    tables = {
        "runs": runs.assign(iterations=last).join(measure(cfg, runs, init, final, xs, ys)),
        "snapshots": pd.concat(
            [
                runs[["run_id"]].assign(iteration=it).join(measure(cfg, runs, init, params, xs, ys))
                for it, params in sorted(snaps.items())
            ],
            ignore_index=True,
        ),
        **details(cfg, runs, init, final),
    }
    tables["curves"] = pd.DataFrame(
        {
            "run_id": np.tile(runs["run_id"].to_numpy(), len(curves)),
            "step": np.repeat(sorted(curves), len(runs)),
            "mse": np.concatenate([curves[k] for k in sorted(curves)]),
        }
    )
    tables["points"] = pd.DataFrame(
        [
            {"target": t, "seed": s, "x": xv, "y": yv}
            for (t, s), (x, y) in data.items()
            for xv, yv in zip(x, y, strict=True)
        ]
    )
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    grid = np.linspace(lo, hi, cfg["grid_points"])
    tables["truth"] = pd.concat(
        [pd.DataFrame({"target": t, "x": grid, "y": target_values(cfg, t, grid)}) for t in targets],
        ignore_index=True,
    )
    return tables


# ---------------------------------------------------------------- measurements ----------------------


def _finite_runs(params: dict[str, np.ndarray]) -> np.ndarray:
    """[R] runs whose parameters are all finite (the others diverged)."""
    ok = np.all(np.isfinite(params["w"]), axis=(0, 2)) & np.all(np.isfinite(params["b"]), axis=(0, 2))
    return ok & np.all(np.isfinite(params["a"]), axis=1) & np.isfinite(params["c"])


def _zeroed(params: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """Params with the runs outside `keep` replaced by zeros (their outcomes are reported as NaN)."""
    out = {}
    for k, v in params.items():
        mask = keep.reshape((1, -1, 1) if v.ndim == 3 else (-1,) + (1,) * (v.ndim - 1))
        out[k] = np.where(mask, v, 0.0)
    return out


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of a and b along the last axis (ranks by argsort; NaN if constant)."""
    ra = np.argsort(np.argsort(a, axis=-1), axis=-1).astype(float)
    rb = np.argsort(np.argsort(b, axis=-1), axis=-1).astype(float)
    ra -= ra.mean(-1, keepdims=True)
    rb -= rb.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


def _ls_slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc**2).sum())


def missed_regions(x: np.ndarray, y: np.ndarray, fit: np.ndarray, tol: float) -> tuple[int, int]:
    """(regions, close regions) of one run: maximal runs of >= 2 consecutive training points
    (x sorted) that the estimate misses by more than `tol`; a region is close when the
    estimate's least-squares slope over its points differs from the data's by at most
    2 tol / (its width), i.e. the two lines part by at most 2 tol across the region."""
    off = np.abs(fit - y) > tol
    regions = close = 0
    start = None
    for i in range(len(x) + 1):
        if i < len(x) and off[i]:
            start = i if start is None else start
            continue
        if start is not None and i - start >= 2:
            sl = slice(start, i)
            width = x[i - 1] - x[start]
            regions += 1
            close += abs(_ls_slope(x[sl], fit[sl]) - _ls_slope(x[sl], y[sl])) * width <= 2 * tol
        start = None
    return regions, close


def measure(cfg, runs, init, params, xs, ys) -> pd.DataFrame:
    """One row per run of `params` (indexed like `runs`): fit, Lipschitz, drift, resets, regions."""
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    wl, wh = cfg["weight_init"]["low"], cfg["weight_init"]["high"]
    tol = cfg["fit_tolerance"]
    ok = _finite_runs(params)
    safe = _zeroed(params, ok)
    with np.errstate(all="ignore"):
        fit = nets.pair_values(safe, xs)
        err = np.abs(fit - ys)
        mse = np.where(ok, (err**2).mean(-1), np.nan)
        var_y = ys.var(-1)
        spacing = np.median(np.diff(xs, axis=-1), axis=-1)  # [R]
        kinks0 = nets.pair_breakpoints(init)  # [R, 2L]
        kinks1 = nets.pair_breakpoints(safe)
        active = (kinks0 >= lo) & (kinks0 <= hi)
        kink_moved = np.abs(kinks1 - kinks0)
        db = np.abs(safe["b"] - init["b"]).transpose(1, 0, 2).reshape(len(runs), -1)  # [R, 2L]
        dw = np.abs(safe["w"] - init["w"]).transpose(1, 0, 2).reshape(len(runs), -1)
        b0, b1 = (np.moveaxis(q["b"], 0, -1) for q in (init, safe))  # [R, 2, L]
        reset_b = nets.pair_values({**safe, "b": init["b"]}, xs)
        reset_w = nets.pair_values({**safe, "w": init["w"]}, xs)
        lip = nets.exact_lipschitz(safe, lo, hi)
        target_lip = np.array([target_lipschitz(cfg, t) for t in runs["target"]])
        width = (runs["init_high"] - runs["init_low"]).to_numpy()
        weight_to_bias = np.median(dw, -1) / (wh - wl) / (np.median(db, -1) / width)
    regions = np.array(
        [missed_regions(xs[r], ys[r], fit[r], tol) if ok[r] else (0, 0) for r in range(len(runs))]
    ).reshape(-1, 2)
    nan = lambda v: np.where(ok, v, np.nan)  # noqa: E731 - diverged runs have no outcome
    out = {
        "status": np.where(ok, "ok", "diverged"),
        "final_mse": mse,
        "fitted_fraction": np.where(ok, (err <= tol).mean(-1), 0.0),
        "fail": ok & (err > tol).any(-1),
        "lipschitz": nan(lip),
        "target_lipschitz": target_lip,
        "lipschitz_ratio": nan(lip / target_lip),
        "data_spacing": spacing,
        "bias_drift_median": nan(np.median(db, -1)),
        "bias_drift_rel_median": nan(np.median(db, -1) / width),
        "bias_drift_rel_max": nan(db.max(-1) / width),
        "bias_drift_spacings_median": nan(np.median(db, -1) / spacing),
        "bias_drift_range_median": nan(np.median(db, -1) / (hi - lo)),
        "kinks_active": active.sum(-1),
        "kinks_moved_lt_spacing": nan((active & (kink_moved < spacing[:, None])).sum(-1)),
        "kink_drift_spacings_median": nan(np.nanmedian(np.where(active, kink_moved, np.nan), -1) / spacing),
        "kink_drift_range_median": nan(np.nanmedian(np.where(active, kink_moved, np.nan), -1) / (hi - lo)),
        "bias_rank_corr": nan(np.nanmean(_rank_correlation(b0, b1), -1)),
        "mse_reset_biases": nan(((reset_b - ys) ** 2).mean(-1)),
        "mse_reset_weights": nan(((reset_w - ys) ** 2).mean(-1)),
        "reset_biases_loss": nan((((reset_b - ys) ** 2).mean(-1) - mse) / var_y),
        "weight_drift_median": nan(np.median(dw, -1)),
        "weight_drift_max": nan(dw.max(-1)),
        "weight_drift_rel_median": nan(np.median(dw, -1) / (wh - wl)),
        "weight_to_bias_drift_rel": nan(weight_to_bias),
        "regions": regions[:, 0],
        "regions_close": regions[:, 1],
        "kinks_in_data_final": np.where(ok, ((kinks1 >= lo) & (kinks1 <= hi)).sum(-1), -1),
        "a_g": nan(safe["a"][:, 0]),
        "a_h": nan(safe["a"][:, 1]),
        "c": nan(safe["c"]),
    }
    return pd.DataFrame(out, index=runs.index)


def details(cfg, runs, init, final) -> dict[str, pd.DataFrame]:
    """The final estimate of every run on the dense grid, and its per-layer parameters."""
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    depth = int(runs["depth"].iloc[0])
    wl, wh = cfg["weight_init"]["low"], cfg["weight_init"]["high"]
    ok = _finite_runs(final)
    grid = np.linspace(lo, hi, cfg["grid_points"])
    with np.errstate(all="ignore"):
        est = nets.pair_values(final, grid)
        kinks0 = nets.pair_breakpoints(init)
        kinks1 = np.where(ok[:, None], nets.pair_breakpoints(_zeroed(final, ok)), np.nan)
    estimates = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(), len(grid)),
            "x": np.tile(grid, len(runs)),
            "yhat": est.reshape(-1),
        }
    )
    layer_rows = {
        "run_id": np.repeat(runs["run_id"].to_numpy(), 2 * depth),
        "network": np.tile(np.repeat(["g", "h"], depth), len(runs)),
        "layer": np.tile(np.arange(1, depth + 1), 2 * len(runs)),
    }
    for key, arr in (
        ("w_init", init["w"]),
        ("w_final", final["w"]),
        ("b_init", init["b"]),
        ("b_final", final["b"]),
    ):
        layer_rows[key] = arr.transpose(1, 2, 0).reshape(-1)  # [R, 2, L]
    layer_rows["kink_init"] = kinks0.reshape(-1)
    layer_rows["kink_final"] = kinks1.reshape(-1)
    layers = pd.DataFrame(layer_rows)
    width = (runs["init_high"] - runs["init_low"]).to_numpy()
    layers["bias_drift_rel"] = np.abs(layers["b_final"] - layers["b_init"]) / np.repeat(width, 2 * depth)
    layers["weight_drift_rel"] = np.abs(layers["w_final"] - layers["w_init"]) / (wh - wl)
    return {"estimates": estimates, "layers": layers}


# ---------------------------------------------------------------- aggregates --------------------------

CELL = ["target", "interval", "half_width", "depth", "momentum", "lr", "iterations"]


def robustness(snapshots: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the robustness grid (target, interval, depth, momentum, iteration budget):
    runs, diverged, fail_fraction (share of non-diverged runs missing some training point by
    more than the fit tolerance) and lipschitz_ok_fraction (share of non-diverged runs whose
    Lipschitz constant is at most the target's, up to 1e-6 relative)."""
    inputs = runs[["run_id", *[c for c in CELL if c != "iterations"]]]
    df = snapshots.merge(inputs, on="run_id").rename(columns={"iteration": "iterations"})
    ok = df["status"].eq("ok")
    df = df.assign(
        diverged=~ok,
        fail_ok=df["fail"].where(ok),
        lip_ok=(df["lipschitz_ratio"] <= 1 + 1e-6).where(ok),
    )
    g = df.groupby(CELL, sort=True)
    out = g.size().rename("runs").to_frame()
    out["diverged"] = g["diverged"].sum().astype(int)
    out["fail_fraction"] = g["fail_ok"].mean()
    out["lipschitz_ok_fraction"] = g["lip_ok"].mean()
    out["median_final_mse"] = g["final_mse"].median()
    out["median_kink_drift_spacings"] = g["kink_drift_spacings_median"].median()
    return out.reset_index()


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: medians per (target, depth, interval, momentum) at the end of training;
    `robustness`: the claims' grid cells (see `robustness`)."""
    runs = tables["runs"]
    cols = [
        "final_mse",
        "fitted_fraction",
        "lipschitz_ratio",
        "bias_drift_spacings_median",
        "kink_drift_spacings_median",
        "bias_rank_corr",
        "reset_biases_loss",
        "weight_drift_rel_median",
    ]
    g = runs.groupby(["target", "depth", "interval", "momentum"], sort=False)
    out = g[cols].median().add_prefix("median_")
    out["runs"] = g.size()
    out["diverged"] = g["status"].apply(lambda s: int((s == "diverged").sum()))
    out["fail_fraction"] = g["fail"].mean()
    return {"summary": out.reset_index(), "robustness": robustness(tables["snapshots"], runs)}
