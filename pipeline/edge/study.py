"""The edge-of-stability study (docs/science.md section 6.3; claims 10-11): config slice -> tables.

Three kinds of shard (`pipeline.studies`, study `edge`):

- `scalar_L{depth}`: the scalar network at one depth, every target, data scale, start, seed and
  step of the grid as one batched `model.gd_trace` (phi of every run at every iteration, the
  exact Hessian's sharpness at the logged ones); tables `runs` and `traces`.
- `{network}_L{depth}`: the single or double matrix network at one depth, every target and step
  as one batch, with the sharpness every `every` iterations (`matrix.sharpness_series`);
  tables `matrix_runs` and `sharpness`.
- `map_{map}_L{depth}`: one trainability map and its zooms (`maps.run_map`), with the
  box-counting dimension of every window's boundary (`fractal.box_dimension`); tables
  `windows` (the packed maps) and `dimension`.

Seeds derive from (base_seed, "edge", purpose, ...): the same config gives identical tables, a
scalar start is the same at every data scale and step, a matrix target the same at every depth,
network and step. Columns: docs/tables.md section 6.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from pipeline import tables as tabs
from pipeline.edge import fractal, maps
from pipeline.edge import matrix as mx
from pipeline.edge import model as em
from pipeline.linear import starts, theory
from pipeline.linear.status import Monitoring
from pipeline.seeds import generator, numpy_rng
from pipeline.shard import Shard

SIGNS = {"single": [1], "double": [1, -1]}
# The band in which, as we read Kreisler et al. (2023), their theorem covers the edge: delta phi0 < 2 sqrt 2.
THEOREM_BAND = 2.0 * math.sqrt(2.0)


# ------------------------------------------------------------------------- scalar ----


def step_grid(phi0: float, ds: float, block: dict) -> list[tuple[float, str]]:
    """The steps of one start: `delta_num` log-spaced from `delta_low / phi0` to `delta_high *
    delta*` (grid `range`), and `edge_num` log-spaced strictly inside `(2 / phi0, delta*)` where
    that band is wider than a relative 1e-6 (grid `edge`). Where the flow stalls (phi0 NaN) the
    balanced sharpness `2 / delta*` stands in for phi0."""
    p = phi0 if math.isfinite(phi0) else 2.0 / ds
    out = [
        (float(d), "range")
        for d in np.geomspace(block["delta_low"] / p, block["delta_high"] * ds, block["delta_num"])
    ]
    if block["edge_num"] > 0 and math.isfinite(phi0) and 2.0 / phi0 < ds * (1 - 1e-6):
        inside = np.geomspace(2.0 / phi0, ds, block["edge_num"] + 2)[1:-1]
        out += [(float(d), "edge") for d in inside]
    return out


def scalar_starts(cfg: dict, L: int) -> pd.DataFrame:
    """One row per (target, start, seed) with its initial weights (column `w0`, a list)."""
    block, base = cfg["scalar"], cfg["base_seed"]
    rows = []
    for r in block["targets"]:
        for init in block["inits"]:
            for seed in range(block["seeds"]):
                g = generator(base, "edge", "scalar", "init", L, r, init, seed)
                w0 = starts.init_scalar(
                    init,
                    L,
                    float(r),
                    g,
                    block["perturbation"],
                    block["random_spread"],
                    block["large_factor"],
                    block["gaussian_std"],
                )
                rows.append({"target": float(r), "init": init, "seed": seed, "w0": w0.numpy()})
    return pd.DataFrame(rows)


def scalar_runs(cfg: dict, L: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The batch: one row per run (start x data scale x step) and its initial weights [B, L]."""
    block = cfg["scalar"]
    rows, weights = [], []
    for st in scalar_starts(cfg, L).itertuples(index=False):
        w0 = np.asarray(st.w0, dtype=float)
        P0 = float(np.prod(w0))
        same_sign = bool(np.all(w0 != 0) and P0 * st.target > 0)
        for s in block["data_scales"]:
            phi0 = float(em.phi(torch.as_tensor(w0[None, :]), st.target, float(s))[0])
            ds = float(theory.delta_star(L, st.target, float(s)))
            for k, (delta, grid) in enumerate(step_grid(phi0, ds, block)):
                rows.append(
                    dict(
                        study="edge",
                        run_id=f"L{L}_r{st.target:g}_s{s:g}_{st.init}_seed{st.seed}_{grid}{k}",
                        seed=st.seed,
                        depth=L,
                        target=st.target,
                        data_scale=float(s),
                        init=st.init,
                        delta=delta,
                        delta_grid=grid,
                        delta_star=ds,
                        phi0=phi0,
                        same_sign=same_sign,
                    )
                )
                weights.append(w0)
    return pd.DataFrame(rows), np.stack(weights)


def run_scalar(cfg: dict, L: int, log) -> dict[str, pd.DataFrame]:
    block = cfg["scalar"]
    runs, W0 = scalar_runs(cfg, L)
    iterations = block["iterations"]
    log(f"scalar network L={L}: {len(runs)} runs, {iterations} iterations")
    log_at = tabs.log_steps(iterations, block["log_points"])
    tr = em.gd_trace(
        torch.as_tensor(W0),
        torch.as_tensor(runs["target"].to_numpy()),
        torch.as_tensor(runs["data_scale"].to_numpy()),
        torch.as_tensor(runs["delta"].to_numpy()),
        iterations,
        log_at,
        blowup=cfg["blowup"],
        tol=cfg["tol"],
        tol_window=cfg["tol_window"],
        increase_rtol=block["increase_rtol"],
    )
    delta, phi0 = runs["delta"].to_numpy(), runs["phi0"].to_numpy()
    runs["regime"] = em.regime(phi0, delta, runs["delta_star"].to_numpy())
    runs["delta_factor"] = delta / runs["delta_star"].to_numpy()
    runs["delta_phi0"] = delta * phi0 / 2
    runs["hypotheses"] = runs["same_sign"].to_numpy() & (delta * phi0 < THEOREM_BAND)
    runs["iterations"] = iterations
    runs["status"] = tr.status
    runs["stopped_step"] = tr.stopped_step
    runs["final_loss"] = tr.final_loss
    runs["final_phi"] = tr.final_phi
    runs["final_sharpness"] = tr.final_sharpness
    runs["final_edge_ratio"] = tr.final_sharpness * delta / 2
    runs["final_flow_ratio"] = tr.final_sharpness / phi0
    runs["phi_increases"] = tr.phi_increases
    runs["phi_comparisons"] = tr.phi_comparisons
    runs["crossed_zero"] = (np.sign(tr.final_w) != np.sign(W0)).any(axis=1) & (tr.status != "diverged")
    counts = ", ".join(f"{k} {v}" for k, v in runs.groupby(["regime", "status"]).size().items())
    log(f"done: {counts}")
    keep = runs["seed"].to_numpy() < block["trace_seeds"]
    T, B = tr.loss.shape
    traces = pd.DataFrame(
        {
            "study": "edge",
            "run_id": np.tile(runs["run_id"].to_numpy(dtype=object), T),
            "step": np.repeat(tr.log_steps, B).astype(np.int64),
            "loss": tr.loss.reshape(-1),
            "phi": tr.phi.reshape(-1),
            "sharpness": tr.sharpness.reshape(-1),
            "phi_ratio": (tr.phi * delta[None, :] / 2).reshape(-1),
            "sharpness_ratio": (tr.sharpness * delta[None, :] / 2).reshape(-1),
        }
    )
    traces = traces[np.tile(keep, T) & np.isfinite(traces["loss"].to_numpy())].reset_index(drop=True)
    return {"runs": runs, "traces": traces}


# ------------------------------------------------------------------------- matrix ----


def run_matrix(cfg: dict, network: str, L: int, log) -> dict[str, pd.DataFrame]:
    block, base = cfg["matrix"], cfg["base_seed"]
    n, signs = block["n"], SIGNS[network]
    rows, targets = [], []
    for seed in range(block["seeds"]):
        g = generator(base, "edge", "matrix", "target", seed)
        t = starts.random_target(n, block["eig_low"], block["eig_high"], block["eigvec"], g)
        for c in block["delta_rel"]:
            delta = float(theory.delta_relative(c, L, t.sigma_max))
            rows.append(
                dict(
                    study="edge",
                    run_id=f"{network}_L{L}_c{c:g}_seed{seed}",
                    network=network,
                    depth=L,
                    n=n,
                    seed=seed,
                    delta_rel=float(c),
                    delta=delta,
                    two_over_delta=2.0 / delta,
                    rho=t.rho,
                    sigma_max=t.sigma_max,
                    eig_min=t.eig_min,
                )
            )
            targets.append(t.R)
    runs = pd.DataFrame(rows)
    B, D = len(runs), len(signs) * L * n * n
    R = torch.stack(targets)
    eye = torch.eye(n, dtype=torch.float64).expand(B, n, n)
    chains = [[eye.clone() for _ in range(L)] for _ in signs]
    start = torch.randn(B, D, dtype=torch.float64, generator=generator(base, "edge", network, L, "lanczos"))
    mon = Monitoring(
        tol=cfg["tol"], tol_window=block["every"], blowup=cfg["blowup"], osc_window=block["every"]
    )
    log(
        f"{network} network L={L}: {B} runs, {block['iterations']} iterations, "
        f"sharpness every {block['every']}"
    )
    se = mx.sharpness_series(
        R,
        chains,
        signs,
        runs["delta"].to_numpy(),
        block["iterations"],
        block["every"],
        mon,
        first_iters=block["first_iters"],
        iters=block["lanczos_iters"],
        warm_noise=block["warm_noise"],
        start=start,
    )
    delta = runs["delta"].to_numpy()
    ratio = se.sharpness * delta[None, :] / 2
    last = np.array(
        [
            se.sharpness[np.flatnonzero(np.isfinite(se.sharpness[:, b]))[-1], b]
            if np.isfinite(se.sharpness[:, b]).any()
            else np.nan
            for b in range(B)
        ]
    )
    runs["iterations"] = block["iterations"]
    runs["every"] = block["every"]
    runs["status"] = se.status
    runs["final_loss"] = se.final_loss
    runs["diverged_step"] = se.diverged_step
    runs["sharpness0"] = se.sharpness[0]
    with np.errstate(invalid="ignore"):
        runs["sharpness_max"] = np.nanmax(np.where(np.isfinite(se.sharpness), se.sharpness, -np.inf), axis=0)
    runs["final_sharpness"] = np.where(se.status == "diverged", np.nan, last)
    runs["final_edge_ratio"] = runs["final_sharpness"] * delta / 2
    runs["max_edge_ratio"] = runs["sharpness_max"] * delta / 2
    runs["samples"] = np.isfinite(se.sharpness).sum(axis=0)
    runs["near_edge_share"] = mx.near_edge_share(se.sharpness, delta, block["near_edge"])
    T = len(se.steps)
    series = pd.DataFrame(
        {
            "study": "edge",
            "run_id": np.tile(runs["run_id"].to_numpy(dtype=object), T),
            "network": network,
            "depth": L,
            "step": np.repeat(se.steps, B).astype(np.int64),
            "sharpness": se.sharpness.reshape(-1),
            "residual": se.residual.reshape(-1),
            "loss": se.loss.reshape(-1),
            "edge_ratio": ratio.reshape(-1),
        }
    )
    series = series[np.isfinite(series["sharpness"].to_numpy())].reset_index(drop=True)
    log(f"done: {', '.join(f'{k} {v}' for k, v in runs['status'].value_counts().items())}")
    return {"matrix_runs": runs, "sharpness": series}


# ---------------------------------------------------------------------------- maps ----


def run_maps(cfg: dict, map_name: str, L: int, log) -> dict[str, pd.DataFrame]:
    block, base = cfg["maps"], cfg["base_seed"]
    res, sizes = block["resolution"], sorted(int(k) for k in block["box_sizes"])
    windows = maps.run_map(
        map_name,
        block[map_name],
        L,
        res,
        block["iterations"],
        cfg["blowup"],
        cfg["tol"],
        block["zoom"]["levels"],
        block["zoom"]["factor"],
        block["zoom"]["at"],
        block["chunk"],
        log,
    )
    x_name, y_name = maps.AXES[map_name]
    rows, dims = [], []
    for window, bounded, converged, _ in windows:
        key = dict(study="edge", map=map_name, depth=L, level=window.level)
        rows.append(
            {
                **key,
                "x_name": x_name,
                "y_name": y_name,
                "x_low": window.x_low,
                "x_high": window.x_high,
                "y_low": window.y_low,
                "y_high": window.y_high,
                "resolution": res,
                "iterations": block["iterations"],
                "share_bounded": float(bounded.mean()),
                "share_converged": float(converged.mean()),
                "bounded": maps.pack(bounded),
                "converged": maps.pack(converged),
            }
        )
        cells = int(fractal.boundary(bounded).sum())
        if cells == 0:
            d, lo, hi, counts, boxes = math.nan, math.nan, math.nan, np.zeros(len(sizes), np.int64), 0
        else:
            rng = numpy_rng(base, "edge", "dimension", map_name, L, window.level)
            d, lo, hi, counts = fractal.box_dimension(
                bounded, sizes, n_boot=block["n_boot"], seed=rng, level=block["level"]
            )
            boxes = int(fractal.box_counting(bounded, [sizes[-1]])[0])
        dims.append(
            {
                **key,
                "dimension": d,
                "ci_low": lo,
                "ci_high": hi,
                "box_sizes": sizes,
                "counts": [int(c) for c in counts],
                "boxes": boxes,
                "boundary_cells": cells,
                "resolution": res,
                "iterations": block["iterations"],
                "n_boot": block["n_boot"],
            }
        )
        log(f"window {window.level}: bounded {bounded.mean():.3f}, dimension {d:.3f} [{lo:.3f}, {hi:.3f}]")
    return {"windows": pd.DataFrame(rows), "dimension": pd.DataFrame(dims)}


def run_shard(cfg: dict, shard: Shard) -> dict[str, pd.DataFrame]:
    """The tables of one shard (module docstring): a map's if it has a `map` wildcard, a matrix
    network's if it has a `network` wildcard, the scalar network's otherwise."""
    torch.set_flush_denormal(True)
    depth = int(shard["depth"])
    if "map" in shard.wildcards:
        return run_maps(cfg, shard["map"], depth, shard.log)
    if "network" in shard.wildcards:
        return run_matrix(cfg, shard["network"], depth, shard.log)
    return run_scalar(cfg, depth, shard.log)
