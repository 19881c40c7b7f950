"""What is measured of trained 1-D pairs (docs/science.md section 4): the status (ok, collapsed,
diverged), the fit, the exact Lipschitz constant, how far the biases and kinks of live layers
moved and how far their kinks started from the target's knots, rank order, resets, how close
the estimate's affine pieces stay to the least-squares lines of the points they cover, the
test error against the true target; the estimates and per-layer tables; the comparison's
progress."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.bias1d import model as nets
from pipeline.bias1d.plan import dense_grid, searches_done, target_knots, target_lipschitz, target_values

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


def _per_layer(params: dict[str, np.ndarray], key: str) -> np.ndarray:
    """`[R, 2L]` per-layer values (g's layers, then h's), in the order of `pair_breakpoints`."""
    v = np.moveaxis(params[key], 0, -1)  # [R, 2, L]
    return v.reshape(v.shape[0], -1)


def live_layers(cfg: dict, params, kinks0, kinks1) -> tuple[np.ndarray, np.ndarray]:
    """(live `[R, 2L]`, bending in the data now `[R, 2L]`) for the state `params`, whose kinks
    are `kinks1` (`kinks0`: at init). A layer bends the estimate when its weight and its
    network's output scale are above `live_floor`; it is live when it bends and its kink lies in
    the data interval at init or now."""
    floor, lo, hi = cfg["live_floor"], cfg["data"]["low"], cfg["data"]["high"]
    depth = params["w"].shape[0]
    bends = (_per_layer(params, "w") > floor) & np.repeat(params["a"] > floor, depth, axis=-1)
    now = bends & (kinks1 >= lo) & (kinks1 <= hi)
    return now | (bends & (kinks0 >= lo) & (kinks0 <= hi)), now


def knot_distance(cfg: dict, runs: pd.DataFrame, kinks: np.ndarray) -> np.ndarray:
    """`[R, 2L]` distance from each kink to the nearest knot of the run's target (NaN for a
    target without knots, the sine): how far it would have to travel to bend where the target
    bends."""
    out = np.full(kinks.shape, np.nan)
    for target in dict.fromkeys(runs["target"]):
        knots = target_knots(cfg, target)
        rows = runs["target"].eq(target).to_numpy()
        if knots is not None and len(knots):
            out[rows] = np.abs(kinks[rows][..., None] - knots).min(-1)
    return out


def affine_pieces(x, y, fit, breakpoints, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """(judged pieces `[R]`, close pieces `[R]`): the estimate's affine pieces against the
    least-squares lines of the training points they cover.

    `x` (sorted), `y`, `fit`: `[R, N]` inputs, labels and the estimate at them; `breakpoints`:
    `[R, K]` where the estimate bends (NaN for layers that do not). The estimate is affine
    between consecutive breakpoints; a point belongs to the piece left of a breakpoint it sits
    on. A piece is judged when it covers at least two training points and misses at least one
    (`|fit - y| > tol`), and it is close when its line and the least-squares line of its points
    are within `tol` of each other over those points (both lines affine: at the first and the
    last point), which compares slope and offset.
    """
    runs, n = x.shape
    bps = np.where(np.isfinite(breakpoints), breakpoints, np.inf)
    piece = (bps[:, None, :] < x[:, :, None]).sum(-1)  # [R, N]
    size = bps.shape[1] + 1
    flat = (np.arange(runs)[:, None] * size + piece).ravel()

    def total(values):
        return np.bincount(flat, weights=np.broadcast_to(values, x.shape).ravel(), minlength=runs * size)

    count, sx, sxx = total(1.0), total(x), total(x * x)
    missed = total(np.abs(fit - y) > tol)
    first, last = np.full(runs * size, np.inf), np.full(runs * size, -np.inf)
    np.minimum.at(first, flat, x.ravel())
    np.maximum.at(last, flat, x.ravel())
    with np.errstate(all="ignore"):
        spread = count * sxx - sx * sx

        def line(v):
            sv, sxv = total(v), total(x * v)
            slope = (count * sxv - sx * sv) / spread
            return slope, (sv - slope * sx) / count

        (s_fit, o_fit), (s_y, o_y) = line(fit), line(y)
        gap = np.maximum(
            np.abs((s_fit - s_y) * first + o_fit - o_y), np.abs((s_fit - s_y) * last + o_fit - o_y)
        )
    judged = (count >= 2) & (missed >= 1) & (spread > 0)
    close = judged & (gap <= tol)
    return judged.reshape(runs, size).sum(-1), close.reshape(runs, size).sum(-1)


def measure(cfg, runs, init, params, xs, ys, iteration: int, collapse_step=None) -> pd.DataFrame:
    """One row per run of `params` (indexed like `runs`), the state after `iteration` steps:
    status, fit, Lipschitz, drift (all layers and live ones), knot distances, resets, affine
    pieces. `collapse_step` (`[R]`, +inf if never; the trainer's) marks the runs that had a
    loss spike in which an output scale was projected to 0: such a run is `collapsed` while
    no live layer bends its estimate inside the data interval."""
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    wl, wh = cfg["weight_init"]["low"], cfg["weight_init"]["high"]
    tol = cfg["fit_tolerance"]
    ok = _finite_runs(params)
    safe = _zeroed(params, ok)
    collapse_step = np.full(len(runs), np.inf) if collapse_step is None else np.asarray(collapse_step)
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
        live, in_data_now = live_layers(cfg, safe, kinks0, kinks1)
        bias_moved = np.abs(_per_layer(safe, "b") - _per_layer(init, "b"))
        knots = knot_distance(cfg, runs, kinks0)
        real = (_per_layer(safe, "w") > 0) & np.repeat(safe["a"] > 0, safe["w"].shape[0], axis=-1)
        pieces = affine_pieces(xs, ys, fit, np.where(real, kinks1, np.nan), tol)
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
    collapsed = ok & (collapse_step < iteration) & ~in_data_now.any(-1)
    momentum = runs["momentum"].to_numpy()
    nan = lambda v: np.where(ok, v, np.nan)  # noqa: E731 - diverged runs have no outcome

    def live_median(values):  # NaN where a run has no live layer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return nan(np.nanmedian(np.where(live, values, np.nan), -1) / spacing)

    out = {
        "status": np.where(ok, np.where(collapsed, "collapsed", "ok"), "diverged"),
        "effective_time": runs["lr"].to_numpy() / (1 - momentum) * iteration,
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
        "live_layers": np.where(ok, live.sum(-1), 0),
        "live_bias_drift_spacings_median": live_median(bias_moved),
        "live_kink_drift_spacings_median": live_median(kink_moved),
        "knot_distance_spacings_median": live_median(knots),
        "bias_rank_corr": nan(np.nanmean(_rank_correlation(b0, b1), -1)),
        "mse_reset_biases": nan(((reset_b - ys) ** 2).mean(-1)),
        "mse_reset_weights": nan(((reset_w - ys) ** 2).mean(-1)),
        "reset_biases_loss": nan((((reset_b - ys) ** 2).mean(-1) - mse) / var_y),
        "weight_drift_median": nan(np.median(dw, -1)),
        "weight_drift_max": nan(dw.max(-1)),
        "weight_drift_rel_median": nan(np.median(dw, -1) / (wh - wl)),
        "weight_to_bias_drift_rel": nan(weight_to_bias),
        "pieces": np.where(ok, pieces[0], 0),
        "pieces_close": np.where(ok, pieces[1], 0),
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
    layer_rows["live"] = (live_layers(cfg, _zeroed(final, ok), kinks0, kinks1)[0] & ok[:, None]).reshape(-1)
    layer_rows["knot_distance"] = knot_distance(cfg, runs, kinks0).reshape(-1)
    layers = pd.DataFrame(layer_rows)
    width = (runs["init_high"] - runs["init_low"]).to_numpy()
    layers["bias_drift_rel"] = np.abs(layers["b_final"] - layers["b_init"]) / np.repeat(width, 2 * depth)
    layers["weight_drift_rel"] = np.abs(layers["w_final"] - layers["w_init"]) / (wh - wl)
    return {"estimates": estimates, "layers": layers}
