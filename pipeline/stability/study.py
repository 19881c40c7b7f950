"""The stability study's three experiments (docs/science.md sections 1-2): config slice -> tables.

A shard is one experiment (`scalar`, `depth`, `single_vs_double`) at one depth.
`run_shard(cfg, shard)` builds the batch of runs of the shard from `cfg` (the engine settings
shared by the experiments plus the experiment's own block), runs it as one batched gradient
descent (two for single_vs_double: single and double network), measures the sharpness at the
end (`model.train`), and returns the tables `runs` and `curves` (columns: docs/tables.md).
Seeds derive from (base_seed, experiment, what the random draw is for, replicate): the same
config gives identical tables, and the target of replicate k is the same at every depth and
step size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.linear import starts, theory
from pipeline.linear.descent import GDResult
from pipeline.linear.network import flat_weights
from pipeline.seeds import generator
from pipeline.shard import Shard
from pipeline.stability.model import scalar_deltas, train

DTYPES = {"float32": torch.float32, "float64": torch.float64}
EXPERIMENTS = ("scalar", "depth", "single_vs_double")


def _curves(experiment, run_ids, res: GDResult) -> pd.DataFrame:
    T, B = res.log_loss.shape
    df = pd.DataFrame(
        {
            "study": "stability",
            "experiment": experiment,
            "run_id": np.tile(np.asarray(run_ids, dtype=object), T),
            "step": np.repeat(res.log_steps, B).astype(np.int64),
            "loss": res.log_loss.reshape(-1),
            "distance": res.log_distance.reshape(-1),
        }
    )
    return df[np.isfinite(df["loss"])].reset_index(drop=True)


def run_scalar(depth: int, engine: dict, block: dict, log=None):
    """Scalar network (n = 1): grid over target r, data scale s, delta, init, seeds at depth L."""
    L, base = depth, engine["base_seed"]
    rows, inits, sigmas = [], [], []
    for r in block["targets"]:
        for s in block["data_scales"]:
            for seed in range(block["seeds"]):
                if block["data"] == "whitened":
                    s_eff = float(s)
                else:
                    g = generator(base, "scalar", "data", s, seed)
                    x = torch.randn(block["n_points"], dtype=torch.float64, generator=g) * np.sqrt(s)
                    s_eff = float((x**2).mean())
                for init in block["inits"]:
                    g = generator(base, "scalar", "init", L, r, s, init, seed)
                    w0 = starts.init_scalar(
                        init,
                        L,
                        r,
                        g,
                        block["perturbation"],
                        block["random_spread"],
                        lognormal_spread=block["lognormal_spread"],
                    )
                    for k, (delta, grid) in enumerate(scalar_deltas(block, L, r, s_eff)):
                        rows.append(
                            dict(
                                run_id=f"L{L}_r{r:g}_s{s:g}_{init}_{grid[0]}{k}_seed{seed}",
                                seed=seed,
                                depth=L,
                                n=1,
                                init=init,
                                network="single",
                                delta=delta,
                                delta_grid=grid,
                                target=float(r),
                                data_scale=s_eff,
                            )
                        )
                        inits.append(w0)
                        sigmas.append(s_eff)
    runs = pd.DataFrame(rows)
    dtype = DTYPES[block["dtype"]]
    W0 = torch.stack(inits).to(dtype)  # [B, L]
    chains = [[W0[:, j].reshape(-1, 1, 1).contiguous() for j in range(L)]]
    R = torch.tensor(runs["target"].to_numpy(), dtype=dtype).reshape(-1, 1, 1)
    sigma = torch.tensor(sigmas, dtype=dtype).reshape(-1, 1, 1)
    delta = runs["delta"].to_numpy()
    res, outcomes = train(R, chains, [1], sigma, delta, block["iterations"], engine, log)
    runs["delta_star"] = theory.delta_star(L, runs["target"].to_numpy(), runs["data_scale"].to_numpy())
    runs["delta_factor"] = delta / runs["delta_star"].to_numpy()
    runs["balanced_sharpness"] = theory.balanced_sharpness(
        L, runs["target"].to_numpy(), runs["data_scale"].to_numpy()
    )
    final_w = flat_weights(res.chains[0]).double().numpy()
    runs["final_product"] = np.prod(final_w, axis=1)
    runs["final_imbalance"] = np.max(np.abs(final_w), axis=1) / np.maximum(
        np.min(np.abs(final_w), axis=1), 1e-300
    )
    for key, val in outcomes.items():
        runs[key] = val
    runs.insert(0, "study", "stability")
    runs.insert(1, "experiment", "scalar")
    return runs, _curves("scalar", runs["run_id"], res)


def _matrix_targets(base, study, n, regimes, eigvec, seeds):
    """{(regime name, seed): Target}, the same for every depth and step size."""
    return {
        (reg["name"], seed): starts.random_target(
            n, reg["low"], reg["high"], eigvec, generator(base, study, "target", reg["name"], seed)
        )
        for reg in regimes
        for seed in range(seeds)
    }


def _sigma(base, study, block, n, dtype, B_idx):
    if block["data"] == "whitened":
        return None
    cov = {
        s: starts.data_covariance(n, "random", block["n_points"], generator(base, study, "data", s))
        for s in sorted(set(B_idx))
    }
    return torch.stack([cov[s] for s in B_idx]).to(dtype)


def _matrix_columns(runs, targets):
    t = [targets[(g, s)] for g, s in zip(runs["regime"], runs["seed"], strict=True)]
    runs["rho"] = [x.rho for x in t]
    runs["sigma_max"] = [x.sigma_max for x in t]
    runs["cond_eigvec"] = [x.cond_eigvec for x in t]
    runs["eig_min"] = [x.eig_min for x in t]
    return t


def run_depth(depth: int, engine: dict, block: dict, log=None):
    """Identity vs orthogonal vs Gaussian init at depth L, each step of the grid with the same
    budget, one R per seed (shared by all depths, inits and steps). The steps are the absolute
    `deltas` (column delta_rel NaN) and the steps scaled per depth and target,
    delta = c * delta_T1(L, rho(R)) for c in `delta_t1_factors` (column delta_rel = c)."""
    L, n, base = depth, block["n"], engine["base_seed"]
    regime = {"name": "positive", "low": block["eig_low"], "high": block["eig_high"]}
    targets = _matrix_targets(base, "depth", n, [regime], block["eigvec"], block["seeds"])
    rows, inits = [], []
    for init in block["inits"]:
        for seed in range(block["seeds"]):
            w0 = starts.init_chain(init, L, n, generator(base, "depth", "init", L, init, seed))
            # absolute steps (the same at every depth), then steps c * delta_T1(L, rho(R))
            rho = targets[("positive", seed)].rho
            steps = [(float(d), np.nan, f"d{k}") for k, d in enumerate(block["deltas"])]
            steps += [
                (float(c * theory.delta_t1(L, rho)), float(c), f"t{k}")
                for k, c in enumerate(block["delta_t1_factors"])
            ]
            for delta, c, tag in steps:
                inits.append(w0)
                rows.append(
                    dict(
                        run_id=f"L{L}_{init}_{tag}_seed{seed}",
                        seed=seed,
                        depth=L,
                        n=n,
                        init=init,
                        network="single",
                        regime="positive",
                        delta=delta,
                        delta_rel=c,
                        eig_low=float(block["eig_low"]),
                        eig_high=float(block["eig_high"]),
                    )
                )
    runs = pd.DataFrame(rows)
    t = _matrix_columns(runs, targets)
    dtype = DTYPES[block["dtype"]]
    R = torch.stack([x.R for x in t]).to(dtype)
    chains = [[torch.stack([w[j] for w in inits]).to(dtype) for j in range(L)]]
    sigma = _sigma(base, "depth", block, n, dtype, list(runs["seed"]))
    delta = runs["delta"].to_numpy()
    res, outcomes = train(R, chains, [1], sigma, delta, block["iterations"], engine, log)
    runs["delta_t1"] = theory.delta_t1(L, runs["rho"].to_numpy())
    for key, val in outcomes.items():
        runs[key] = val
    runs.insert(0, "study", "stability")
    runs.insert(1, "experiment", "depth")
    return runs, _curves("depth", runs["run_id"], res)


def run_single_vs_double(depth: int, engine: dict, block: dict, log=None):
    """Single vs double network on random diagonalizable R, absolute and relative steps, at depth L."""
    L, n, base = depth, block["n"], engine["base_seed"]
    targets = _matrix_targets(base, "single_vs_double", n, block["regimes"], "gaussian", block["seeds"])
    rows = []
    for reg in block["regimes"]:
        for seed in range(block["seeds"]):
            t = targets[(reg["name"], seed)]
            steps = [(float(d), np.nan, f"a{k}") for k, d in enumerate(block["deltas"])]
            steps += [
                (float(theory.delta_relative(c, L, t.sigma_max)), float(c), f"c{k}")
                for k, c in enumerate(block["delta_rel"])
            ]
            for delta, c, tag in steps:
                rows.append(
                    dict(
                        seed=seed,
                        depth=L,
                        n=n,
                        init="identity",
                        regime=reg["name"],
                        delta=delta,
                        delta_rel=c,
                        eig_low=float(reg["low"]),
                        eig_high=float(reg["high"]),
                        pair_id=f"L{L}_{reg['name']}_{tag}_seed{seed}",
                    )
                )
    pairs = pd.DataFrame(rows)
    t = _matrix_columns(pairs, targets)
    dtype = DTYPES[block["dtype"]]
    R = torch.stack([x.R for x in t]).to(dtype)
    B = len(pairs)
    sigma = _sigma(base, "single_vs_double", block, n, dtype, list(pairs["seed"]))
    delta = pairs["delta"].to_numpy()
    eye = torch.eye(n, dtype=dtype).expand(B, n, n)
    out_runs, out_curves = [], []
    for network, signs in (("single", [1]), ("double", [1, -1])):
        chains = [[eye.clone() for _ in range(L)] for _ in signs]
        if log is not None:
            log(f"{network} network: {B} runs, {block['iterations']} iterations")
        res, outcomes = train(R, chains, signs, sigma, delta, block["iterations"], engine, log)
        runs = pairs.copy()
        runs.insert(0, "run_id", [f"{p}_{network}" for p in pairs["pair_id"]])
        runs["network"] = network
        for key, val in outcomes.items():
            runs[key] = val
        out_runs.append(runs)
        out_curves.append(_curves("single_vs_double", runs["run_id"], res))
    runs = pd.concat(out_runs, ignore_index=True)
    runs["delta_t1"] = theory.delta_t1(L, runs["rho"].to_numpy())
    runs.insert(0, "study", "stability")
    runs.insert(1, "experiment", "single_vs_double")
    return runs, pd.concat(out_curves, ignore_index=True)


RUNNERS = {"scalar": run_scalar, "depth": run_depth, "single_vs_double": run_single_vs_double}


def run_shard(cfg: dict, shard: Shard) -> dict[str, pd.DataFrame]:
    """Tables `runs` and `curves` of one shard (wildcards experiment, depth); see the module
    docstring."""
    torch.set_flush_denormal(True)
    experiment, depth = shard["experiment"], int(shard["depth"])
    engine = {k: v for k, v in cfg.items() if k not in EXPERIMENTS}
    shard.log(f"{experiment} at depth {depth}: building the batch")
    runs, curves = RUNNERS[experiment](depth, engine, cfg[experiment], shard.log)
    counts = ", ".join(f"{k} {v}" for k, v in runs["status"].value_counts().items())
    shard.log(f"{len(runs)} runs: {counts}")
    return {"runs": runs, "curves": curves}
