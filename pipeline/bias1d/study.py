"""The 1-D bias study (docs/science.md section 4): config slice -> trained pairs -> tables.

One shard = one depth: every run of the depth trained at once, as one batch. The main grid
(claims 5-6) is every target x bias-init interval x momentum x seed, gradient-only, at the
label-noise level `data.noise_std`; the comparison of bias updates (`updates`, claim 9) adds
the runs of its sub-grid (its targets x intervals x momenta x `noise_stds` x methods
`gradient` / `kink_search` x seeds) at its depths, those already in the main grid once.
Run `"{target}-L{depth}-{interval}-m{momentum}-s{seed}"`, followed by `-n{noise_std}` when
the labels are noisy and by `-kink_search` for the non-gradient update, uses seed value
`seed_offset + k` (k = 0..seeds-1). The initial weights and the uniform draws behind the
biases depend on (depth, seed) only, so the runs of one seed differ across intervals only by
where the same draws land (b = low + (high - low) u), and across momenta, noise levels and
methods not at all at the start; the training inputs and the standard normal draws behind
the label noise depend on (target, seed) only (noise = noise_std times the same draws).

Every run is measured at its end (table `runs`) and at each iteration of `snapshots` (table
`snapshots`, one row per run and iteration): the iteration budget is a setting of the
claims' robustness grid without extra runs. What is measured (`measure`): the fit, the exact
Lipschitz constant, how far biases and kinks moved (in data spacings and in units of the
data range), whether the biases kept their rank order, how much of the fit is lost when the
biases (or the weights) are reset to their initial values, and, where the estimate misses
training points, how close it stays to the least-squares line of the points it misses, and
the test error against the true target on the dense grid. The comparison's runs are also
measured at `trace_steps` (table `progress`), and the shard's wall time of gradient steps and
of searches is measured separately (table `timing`): the equal-wall-time comparison
(`equal_time`) is built from these two.
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
GRADIENT, SEARCH = "gradient", "kink_search"
METHODS = (GRADIENT, SEARCH)


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


def training_points(cfg: dict, target: str, seed: int, noise_std: float | None = None):
    """Training inputs (sorted) and labels of one (target, seed) at a label-noise level
    (default `data.noise_std`): `y = target(x) + noise_std z`, the same `z ~ N(0, 1)` at every
    level, so noise_std 0 gives the exact samples."""
    d = cfg["data"]
    noise_std = d["noise_std"] if noise_std is None else noise_std
    rng = numpy_rng("bias1d", "data", target, seed)
    if d["spacing"] == "even":
        x = np.linspace(d["low"], d["high"], d["points"])
    else:
        x = np.sort(rng.uniform(d["low"], d["high"], d["points"]))
    y = target_values(cfg, target, x) + noise_std * rng.standard_normal(d["points"])
    return x, y


def dense_grid(cfg: dict) -> np.ndarray:
    """The dense grid on the data interval where estimates and the test error are taken."""
    return np.linspace(cfg["data"]["low"], cfg["data"]["high"], cfg["grid_points"])


# ---------------------------------------------------------------- runs and init ----------------------


def seeds(cfg: dict) -> list[int]:
    return [cfg["seed_offset"] + k for k in range(cfg["seeds"])]


def run_id(target, depth, interval, momentum, seed, noise_std=0.0, method=GRADIENT) -> str:
    """`{target}-L{depth}-{interval}-m{momentum}-s{seed}`, then `-n{noise_std}` for noisy labels
    and `-{method}` for a non-gradient update (so the gradient-only noise-free runs keep the
    ids they had before noise and methods existed)."""
    rid = f"{target}-L{depth}-{interval}-m{momentum:g}-s{seed}"
    if noise_std:
        rid += f"-n{noise_std:g}"
    return rid if method == GRADIENT else f"{rid}-{method}"


def plan(cfg: dict, depth: int, targets=None) -> pd.DataFrame:
    """One row per run of the shard of `depth` (all targets unless given): inputs only.

    First the main grid (`main_grid`, claims 5-6) in its order, then the comparison runs of
    `updates` (`comparison`) that the main grid does not already hold.
    """
    targets = list(targets or cfg["targets"])
    rows: dict[str, dict] = {}

    def add(target, iv, momentum, seed, noise_std, method, main):
        rid = run_id(target, depth, iv["name"], momentum, seed, noise_std, method)
        if rid in rows:
            rows[rid]["comparison"] = True
            return
        rows[rid] = {
            "run_id": rid,
            "seed": seed,
            "target": target,
            "depth": depth,
            "interval": iv["name"],
            "init_low": float(iv["low"]),
            "init_high": float(iv["high"]),
            "half_width": (float(iv["high"]) - float(iv["low"])) / 2,
            "momentum": float(momentum),
            "lr": float(cfg["optimizer"]["lr"]),
            "noise_std": float(noise_std),
            "method": method,
            "main_grid": main,
            "comparison": not main,
        }

    grid = itertools.product(targets, cfg["intervals"], cfg["optimizer"]["momenta"], seeds(cfg))
    for target, iv, momentum, seed in grid:
        add(target, iv, momentum, seed, cfg["data"]["noise_std"], GRADIENT, True)
    up = cfg["updates"]
    if up["enabled"] and depth in up["depths"]:
        grid = itertools.product(
            [t for t in up["targets"] if t in targets],
            [iv for iv in cfg["intervals"] if iv["name"] in up["intervals"]],
            up["momenta"],
            up["noise_stds"],
            METHODS,
            seeds(cfg),
        )
        for target, iv, momentum, noise_std, method, seed in grid:
            add(target, iv, momentum, seed, noise_std, method, False)
    return pd.DataFrame(list(rows.values()))


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


def trace_steps(cfg: dict) -> list[int]:
    """The iterations at which the comparison's runs are measured (table `progress`): the
    curves' log-spaced steps, `updates.trace_points` evenly spaced ones and the snapshots."""
    its = cfg["optimizer"]["iterations"]
    even = np.round(np.linspace(0, its, cfg["updates"]["trace_points"] + 1)).astype(int)
    curve = set(log_steps(its, cfg["curve_points"]).tolist())
    return sorted(curve | set(even.tolist()) | set(snapshot_steps(cfg)))


def searches_done(cfg: dict, runs: pd.DataFrame, steps) -> np.ndarray:
    """`[R, S]` kink searches each run has had after each number of gradient steps."""
    k = cfg["updates"]["every"]
    steps = np.asarray(steps, dtype=np.int64)
    return np.where(runs["method"].eq(SEARCH).to_numpy()[:, None], steps[None, :] // k, 0)


def train(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray, steps=()):
    """Train the runs (rows of `runs`, inputs `xs`/labels `ys` `[R, N]`); the `kink_search` runs
    get a kink search every `updates.every` gradient steps.

    Returns the initial parameters, {iteration: parameters} at every snapshot (the last is
    the end) and at `steps`, the MSE curves, and the trainer's `stats` (steps to fit, kink
    moves, searches, wall seconds of gradient steps and of searches).
    """
    opt = cfg["optimizer"]
    p = initial_params(cfg, runs)
    init = p.numpy()
    x = torch.from_numpy(np.ascontiguousarray(xs))
    y = torch.from_numpy(np.ascontiguousarray(ys))
    momentum = torch.tensor(runs["momentum"].to_numpy())
    curve = log_steps(opt["iterations"], cfg["curve_points"])
    stats: dict = {}
    _, curves, snaps = nets.train_nesterov(
        p,
        x,
        y,
        opt["lr"],
        momentum,
        opt["iterations"],
        curve,
        sorted(set(snapshot_steps(cfg)) | set(steps)),
        search_every=cfg["updates"]["every"],
        search_runs=np.flatnonzero(runs["method"].eq(SEARCH).to_numpy()),
        fit_mse=torch.from_numpy(fit_threshold(cfg, runs, xs, ys)),
        stats=stats,
    )
    return init, snaps, curves, stats


def truth_mse(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`[R]` training MSE of the true target itself (the mean squared label noise)."""
    truth = np.stack([target_values(cfg, t, x) for t, x in zip(runs["target"], xs, strict=True)])
    return ((ys - truth) ** 2).mean(-1)


def fit_threshold(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`[R]` the training MSE at which a run has fitted its data (`steps_to_fit`): that of the
    true target plus `fit_tolerance` squared (an RMS error within the tolerance on exact data)."""
    return truth_mse(cfg, runs, xs, ys) + cfg["fit_tolerance"] ** 2


def run_shard(cfg: dict, depth: int, targets=None) -> dict[str, pd.DataFrame]:
    """Train every run of one depth (all targets unless given) as one batch and measure it.

    Returns the shard's tables: runs (at the end), snapshots, estimates, layers, curves,
    points (training data per target, seed and noise level), truth (each target on the dense
    grid), progress (the comparison's runs at `trace_steps`) and timing (one row: the wall
    seconds of gradient steps and of searches).
    """
    targets = list(targets or cfg["targets"])
    runs = plan(cfg, depth, targets)
    keys = list(zip(runs["target"], runs["seed"], runs["noise_std"], strict=True))
    data = {k: training_points(cfg, *k) for k in dict.fromkeys(keys)}
    xs = np.stack([data[k][0] for k in keys])
    ys = np.stack([data[k][1] for k in keys])
    compare = runs["comparison"].to_numpy()
    traced = trace_steps(cfg) if compare.any() else []
    init, snaps, curves, stats = train(cfg, runs, xs, ys, traced)
    measured = snapshot_steps(cfg)
    last = measured[-1]
    final = snaps[last]
    fit_mse = fit_threshold(cfg, runs, xs, ys)
    extra = pd.DataFrame(
        {
            "truth_mse": fit_mse - cfg["fit_tolerance"] ** 2,
            "fit_mse_threshold": fit_mse,
            "steps_to_fit": np.where(np.isfinite(stats["steps_to_fit"]), stats["steps_to_fit"], np.nan),
            "searches": searches_done(cfg, runs, [last])[:, 0],
            "kink_moves": stats["kink_moves"],
        },
        index=runs.index,
    )
    tables = {
        "runs": runs.assign(iterations=last).join(measure(cfg, runs, init, final, xs, ys)).join(extra),
        "snapshots": pd.concat(
            [
                runs[["run_id"]]
                .assign(iteration=it)
                .join(measure(cfg, runs, init, snaps[it], xs, ys))
                .assign(searches=searches_done(cfg, runs, [it])[:, 0])
                for it in measured
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
    traces = {t: _rows(snaps[t], compare) for t in traced}
    tables["progress"] = progress(cfg, runs[compare], traces, xs[compare], ys[compare])
    tables["timing"] = timing(cfg, runs, depth, stats)
    tables["points"] = pd.DataFrame(
        [
            {"target": t, "seed": s, "noise_std": n, "x": xv, "y": yv}
            for (t, s, n), (x, y) in data.items()
            for xv, yv in zip(x, y, strict=True)
        ]
    )
    grid = dense_grid(cfg)
    tables["truth"] = pd.concat(
        [pd.DataFrame({"target": t, "x": grid, "y": target_values(cfg, t, grid)}) for t in targets],
        ignore_index=True,
    )
    return tables


def _rows(params: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The parameters of the runs where `keep` (`[R]` bool) holds."""
    return {k: v[:, keep] if v.ndim == 3 else v[keep] for k, v in params.items()}


PROGRESS_COLUMNS = ["run_id", "step", "searches", "mse", "test_mse", "lipschitz", "lipschitz_ratio"]


def progress(cfg, runs, snaps, xs, ys) -> pd.DataFrame:
    """One row per run of `runs` and step of `snaps` ({step: parameters of these runs}): the
    training MSE, the test error against the true target and the exact Lipschitz constant."""
    if not len(runs) or not snaps:
        empty = {c: pd.Series(dtype="object" if c == "run_id" else "float64") for c in PROGRESS_COLUMNS}
        return pd.DataFrame(empty)
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    truth = _truth_on_grid(cfg, runs)
    target_lip = np.array([target_lipschitz(cfg, t) for t in runs["target"]])
    steps = sorted(snaps)
    searches = searches_done(cfg, runs, steps)
    parts = []
    for s, step in enumerate(steps):
        params = snaps[step]
        ok = _finite_runs(params)
        safe = _zeroed(params, ok)
        with np.errstate(all="ignore"):
            train = np.where(ok, ((nets.pair_values(safe, xs) - ys) ** 2).mean(-1), np.nan)
            test = np.where(ok, ((nets.pair_values(safe, dense_grid(cfg)) - truth) ** 2).mean(-1), np.nan)
            lip = np.where(ok, nets.exact_lipschitz(safe, lo, hi), np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "run_id": runs["run_id"].to_numpy(),
                    "step": step,
                    "searches": searches[:, s],
                    "mse": train,
                    "test_mse": test,
                    "lipschitz": lip,
                    "lipschitz_ratio": lip / target_lip,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def timing(cfg, runs: pd.DataFrame, depth: int, stats: dict) -> pd.DataFrame:
    """One row: the shard's measured wall seconds of gradient steps and of kink searches, and
    the per-run costs (a batch's seconds shared equally by the runs it holds)."""
    its = cfg["optimizer"]["iterations"]
    n_search = int(runs["method"].eq(SEARCH).sum())
    step = stats["grad_seconds"] / (its * len(runs)) if its else np.nan
    search = stats["search_seconds"] / (stats["searches"] * n_search) if stats["searches"] else np.nan
    return pd.DataFrame(
        [
            {
                "depth": depth,
                "runs": len(runs),
                "search_runs": n_search,
                "iterations": its,
                "search_every": cfg["updates"]["every"],
                "searches": stats["searches"],
                "grad_seconds": stats["grad_seconds"],
                "search_seconds": stats["search_seconds"],
                "seconds_per_run_step": step,
                "seconds_per_run_search": search,
                "search_cost_steps": search / step,
            }
        ]
    )


# ---------------------------------------------------------------- measurements ----------------------


def _truth_on_grid(cfg: dict, runs: pd.DataFrame) -> np.ndarray:
    """`[R, G]` each run's true target on the dense grid."""
    grid = dense_grid(cfg)
    values = {t: target_values(cfg, t, grid) for t in dict.fromkeys(runs["target"])}
    return np.stack([values[t] for t in runs["target"]]) if len(runs) else np.zeros((0, len(grid)))


def test_error(cfg: dict, runs: pd.DataFrame, params: dict[str, np.ndarray]) -> np.ndarray:
    """`[R]` generalisation error: the mean over the dense grid of the data interval of
    `(fhat(x) - target(x))^2`, against the true target (not the noisy labels)."""
    return ((nets.pair_values(params, dense_grid(cfg)) - _truth_on_grid(cfg, runs)) ** 2).mean(-1)


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
        test = test_error(cfg, runs, safe)
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
        "test_mse": nan(test),
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
    depth = int(runs["depth"].iloc[0])
    wl, wh = cfg["weight_init"]["low"], cfg["weight_init"]["high"]
    ok = _finite_runs(final)
    grid = dense_grid(cfg)
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


def main_grid(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the main grid (claims 5-6); tables without the column hold only those."""
    return runs[runs["main_grid"]] if "main_grid" in runs else runs


def robustness(snapshots: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the robustness grid (target, interval, depth, momentum, iteration budget)
    of the main grid's runs: runs, diverged, fail_fraction (share of non-diverged runs missing
    some training point by more than the fit tolerance) and lipschitz_ok_fraction (share of
    non-diverged runs whose Lipschitz constant is at most the target's, up to 1e-6 relative)."""
    runs = main_grid(runs)
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
    out["fail_fraction"] = g["fail"].mean()
    return {
        "summary": out.reset_index(),
        "robustness": robustness(tables["snapshots"], runs),
        "updates": updates_summary(runs, tables["progress"], tables["timing"]),
    }
