"""The 1-D bias study (docs/science.md section 4): config slice -> trained pairs -> tables.

One shard = one depth: every run of the depth trained at once, as one batch. The main grid
(claims 5-6) is every target x bias-init interval x momentum x seed (`primary_seeds` seeds in
the cells it names), gradient-only, at the label-noise level `data.noise_std`; the comparison
of bias updates (`updates`, claim 9) adds the runs of its sub-grid (its targets x intervals x
momenta x `noise_stds` x methods `gradient` / `kink_search` (exact coordinate descent over
the biases, `exact_search.exact_kink_search`) x `updates.seeds` seeds) at its depths, those
already in the main grid once.
Run `"{target}-L{depth}-{interval}-m{momentum}-s{seed}"`, followed by `-n{noise_std}` when
the labels are noisy and by `-kink_search` for the non-gradient update, uses seed value
`seed_offset + k` (k = 0..seeds-1). The initial weights and the uniform draws behind the
biases depend on (depth, seed) only, so the runs of one seed differ across intervals only by
where the same draws land (b = low + (high - low) u), and across momenta, noise levels and
methods not at all at the start; the training inputs and the standard normal draws behind
the label noise depend on (target, seed) only (noise = noise_std times the same draws).

Every run is measured at its end (table `runs`) and at each iteration of `snapshots` (table
`snapshots`, one row per run and iteration): the iteration budget is a setting of the
claims' robustness grid without extra runs. What is measured (`measure`): the status (`ok`,
`collapsed`: a loss spike that projected an output scale to 0 and left the estimate affine,
`diverged`), the fit, the exact Lipschitz constant, how far biases and kinks moved (all
layers, and the live ones; in data spacings and in units of the data range) and how far the
live kinks started from the target's knots, whether the biases kept their rank order, how
much of the fit is lost when the biases (or the weights) are reset to their initial values,
how close the estimate's affine pieces that miss training points stay to the least-squares
lines of the points they cover, and the test error against the true target on the dense
grid. The comparison's runs are also measured at `trace_steps` (table `progress`), and the
shard's wall time of gradient steps and of searches is measured separately (table `timing`):
the equal-wall-time comparison (`equal_time`) and the seconds to fit are built from these two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.bias1d import model as nets
from pipeline.bias1d.exact_search import exact_kink_search
from pipeline.bias1d.measure import details, measure, progress
from pipeline.bias1d.plan import (
    dense_grid,
    fit_threshold,
    plan,
    searches_done,
    snapshot_steps,
    target_values,
    trace_steps,
    training_points,
)
from pipeline.bias1d.summary import SEARCH
from pipeline.seeds import numpy_rng
from pipeline.shard import Shard
from pipeline.tables import log_steps


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


def train(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray, steps=()):
    """Train the runs (rows of `runs`, inputs `xs`/labels `ys` `[R, N]`); the `kink_search` runs
    get a round of exact kink search every `updates.every` gradient steps.

    Returns the initial parameters, {iteration: parameters} at every snapshot (the last is
    the end) and at `steps`, the MSE curves, and the trainer's `stats` (steps to fit, collapse
    steps, loss spikes, kink moves, searches, wall seconds of gradient steps and of searches).
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
        search_fn=exact_kink_search,
        fit_mse=torch.from_numpy(fit_threshold(cfg, runs, xs, ys)),
        collapse_spike=cfg["collapse_spike"],
        stats=stats,
    )
    return init, snaps, curves, stats


def run_shard(cfg: dict, shard: Shard) -> dict[str, pd.DataFrame]:
    """Train every run of one depth (wildcard `depth`) as one batch and measure it.

    Returns the shard's tables: runs (at the end), snapshots, estimates, layers, curves,
    points (training data per target, seed and noise level), truth (each target on the dense
    grid), progress (the comparison's runs at `trace_steps`) and timing (one row: the wall
    seconds of gradient steps and of searches).
    """
    depth, targets = int(shard["depth"]), list(cfg["targets"])
    runs = plan(cfg, depth, targets)
    keys = list(zip(runs["target"], runs["seed"], runs["noise_std"], strict=True))
    data = {k: training_points(cfg, *k) for k in dict.fromkeys(keys)}
    xs = np.stack([data[k][0] for k in keys])
    ys = np.stack([data[k][1] for k in keys])
    compare = runs["comparison"].to_numpy()
    traced = trace_steps(cfg) if compare.any() else []
    n_search = int(runs["method"].eq(SEARCH).sum())
    shard.log(f"depth {depth}: training {len(runs)} runs ({n_search} with kink search), "
              f"{cfg['optimizer']['iterations']} iterations")  # fmt: skip
    init, snaps, curves, stats = train(cfg, runs, xs, ys, traced)
    shard.log(f"trained: gradient steps {stats['grad_seconds']:.1f} s, {stats['searches']} search rounds "
              f"{stats['search_seconds']:.1f} s; measuring")  # fmt: skip
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
            "collapse_step": np.where(np.isfinite(stats["collapse_step"]), stats["collapse_step"], np.nan),
            "loss_spike": stats["loss_spike"],
        },
        index=runs.index,
    )
    collapse = stats["collapse_step"]
    tables = {
        "runs": runs.assign(iterations=last)
        .join(measure(cfg, runs, init, final, xs, ys, last, collapse))
        .join(extra),
        "snapshots": pd.concat(
            [
                runs[["run_id"]]
                .assign(iteration=it)
                .join(measure(cfg, runs, init, snaps[it], xs, ys, it, collapse))
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
