"""The 1-D bias study (docs/science.md section 4): config slice -> trained pairs -> tables.

One shard = one depth: all targets x bias-init intervals x seeds trained at once.
Run id -> seed: run `"{target}-L{depth}-{interval}-s{seed}"` uses seed value
`seed = seed_offset + k` (k = 0..seeds-1). The initial weights and the uniform draws
behind the biases depend on (seed, depth) only, so the runs of one seed differ across
intervals only by where the same draws land (b = low + (high - low) u), and the training
points depend on (seed, target) only.
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
    for target, iv, seed in itertools.product(targets or cfg["targets"], cfg["intervals"], seeds(cfg)):
        rows.append(
            {
                "run_id": f"{target}-L{depth}-{iv['name']}-s{seed}",
                "seed": seed,
                "target": target,
                "depth": depth,
                "interval": iv["name"],
                "init_low": float(iv["low"]),
                "init_high": float(iv["high"]),
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


def train(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray):
    """Train the runs (rows of `runs`, inputs `xs`/labels `ys` `[R, N]`); returns init, final, curves."""
    opt = cfg["optimizer"]
    p = initial_params(cfg, runs)
    init = p.numpy()
    steps = log_steps(opt["iterations"], cfg["curve_points"])
    x = torch.from_numpy(np.ascontiguousarray(xs))
    y = torch.from_numpy(np.ascontiguousarray(ys))
    p, curves = nets.train_nesterov(p, x, y, opt["lr"], opt["momentum"], opt["iterations"], steps)
    return init, p.numpy(), curves


def run_shard(cfg: dict, depth: int, targets=None) -> dict[str, pd.DataFrame]:
    """Train every run of one depth (all targets unless given) as one batch and measure it.

    Returns the shard's tables: runs, estimates, layers, curves, points (training data per
    target and seed) and truth (each target on the dense grid).
    """
    targets = list(targets or cfg["targets"])
    runs = plan(cfg, depth, targets)
    data = {(t, s): training_points(cfg, t, s) for t in targets for s in seeds(cfg)}
    keys = list(zip(runs["target"], runs["seed"], strict=True))
    xs = np.stack([data[k][0] for k in keys])
    ys = np.stack([data[k][1] for k in keys])
    init, final, curves = train(cfg, runs, xs, ys)
    tables = measure(cfg, runs, init, final, xs, ys)
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


def measure(cfg, runs, init, final, xs, ys) -> dict[str, pd.DataFrame]:
    """Per-run outcomes, per-layer parameters and dense-grid estimates."""
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    depth = int(runs["depth"].iloc[0])
    wl, wh = cfg["weight_init"]["low"], cfg["weight_init"]["high"]
    with np.errstate(all="ignore"):
        fit = nets.pair_values(final, xs)
        final_mse = ((fit - ys) ** 2).mean(-1)
        finite = np.isfinite(final_mse) & np.all(np.isfinite(final["w"]), axis=(0, 2))
        finite &= np.all(np.isfinite(final["b"]), axis=(0, 2))
        lip = np.where(finite, nets.exact_lipschitz(_finite(final, finite), lo, hi), np.nan)
        kinks0 = nets.pair_breakpoints(init)
        kinks1 = nets.pair_breakpoints(_finite(final, finite))
        width = (runs["init_high"] - runs["init_low"]).to_numpy()
        db = np.abs(final["b"] - init["b"]).transpose(1, 0, 2).reshape(len(runs), -1)  # [R, 2L]
        dw = np.abs(final["w"] - init["w"]).transpose(1, 0, 2).reshape(len(runs), -1)
        fitted = (np.abs(fit - ys) <= cfg["fit_tolerance"]).mean(-1)
    out = runs.copy()
    out["status"] = np.where(finite, "ok", "diverged")
    out["iterations"] = cfg["optimizer"]["iterations"]
    out["lr"] = cfg["optimizer"]["lr"]
    out["momentum"] = cfg["optimizer"]["momentum"]
    out["final_mse"] = final_mse
    out["lipschitz"] = lip
    out["target_lipschitz"] = [target_lipschitz(cfg, t) for t in runs["target"]]
    out["lipschitz_ratio"] = lip / out["target_lipschitz"]
    out["bias_drift_rel_median"] = np.median(db, -1) / width
    out["bias_drift_rel_max"] = db.max(-1) / width
    out["bias_drift_median"] = np.median(db, -1)
    out["weight_drift_median"] = np.median(dw, -1)
    out["weight_drift_max"] = dw.max(-1)
    out["weight_drift_rel_median"] = np.median(dw, -1) / (wh - wl)
    out["fitted_fraction"] = np.where(finite, fitted, 0.0)
    out["kinks_in_data_init"] = ((kinks0 >= lo) & (kinks0 <= hi)).sum(-1)
    out["kinks_in_data_final"] = np.where(finite, ((kinks1 >= lo) & (kinks1 <= hi)).sum(-1), -1)
    out["a_g"], out["a_h"], out["c"] = final["a"][:, 0], final["a"][:, 1], final["c"]

    grid = np.linspace(lo, hi, cfg["grid_points"])
    with np.errstate(all="ignore"):
        est = nets.pair_values(final, grid)
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
    layers["bias_drift_rel"] = np.abs(layers["b_final"] - layers["b_init"]) / np.repeat(width, 2 * depth)
    layers["weight_drift_rel"] = np.abs(layers["w_final"] - layers["w_init"]) / (wh - wl)
    return {"runs": out, "estimates": estimates, "layers": layers}


def _finite(params: dict[str, np.ndarray], finite: np.ndarray) -> dict[str, np.ndarray]:
    """Params with diverged runs replaced by zeros (their outcomes are reported as NaN)."""
    out = {}
    for k, v in params.items():
        mask = finite.reshape((1, -1, 1) if v.ndim == 3 else (-1,) + (1,) * (v.ndim - 1))
        out[k] = np.where(mask, v, 0.0)
    return out


def summary(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Medians per (target, depth, interval): the numbers claims 5 and 6 rest on."""
    runs = tables["runs"]
    cols = [
        "final_mse",
        "fitted_fraction",
        "lipschitz_ratio",
        "bias_drift_rel_median",
        "weight_drift_rel_median",
        "bias_drift_median",
        "weight_drift_median",
    ]
    g = runs.groupby(["target", "depth", "interval"], sort=False)
    out = g[cols].median().add_prefix("median_")
    out["runs"] = g.size()
    out["diverged"] = g["status"].apply(lambda s: int((s == "diverged").sum()))
    out["fitted_all"] = g["fitted_fraction"].apply(lambda s: float((s == 1.0).mean()))
    out["lipschitz_le_target"] = g["lipschitz_ratio"].apply(lambda s: float((s <= 1 + 1e-6).mean()))
    return out.reset_index()
