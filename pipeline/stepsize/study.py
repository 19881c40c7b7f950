"""The step-size study (docs/science.md section 6.1; claim 8): config slice -> tables.

A shard is one problem at one depth: `scalar` (n = 1), `single` or `double` (n x n matrix
networks), or the basin map of one depth (the region-of-attraction grid of the scalar
network; its shard has no `problem` wildcard). `run_shard(cfg, shard)` builds every run of the
shard, runs them as one batched `model.descend`, and returns the tables `runs` and `curves`
(problems) or `basins` (basin maps), columns in docs/tables.md.

An *instance* is one (problem, depth, target, start, seed): the same initial weights and
target for every rule. Each instance gets one run per rule and step factor `f` of the grid,
with `delta0 = f * delta_ref` (the fixed step, AdGD's first step, Armijo's first trial, and
Polyak's cap times `polyak.cap`), one curvature run per refresh interval (that rule has no
`delta0`; interval 1 is the rule as stated), and one run of each baseline at its published
defaults (`stepsize.published`; column `setting`: grid, curvature or published).
`delta_ref` is `delta*_L` of the scalar network, or for a matrix target the Theorem 1 step
with `sigma_max` in place of `rho` (`linear.theory.delta_relative(1, L, sigma_max)`). The
oracle of an instance is its cheapest converged fixed-step run (the best fixed step of the
grid in hindsight). Seeds derive from (base_seed, "stepsize", problem, purpose, ...): the
same config gives identical tables, and a matrix target of seed k is the same at every depth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.linear import starts, theory
from pipeline.linear.lanczos import sharpness
from pipeline.linear.network import flat_weights
from pipeline.linear.status import Monitoring
from pipeline.seeds import generator
from pipeline.shard import Shard
from pipeline.stepsize import model as ss

DTYPES = {"float32": torch.float32, "float64": torch.float64}
SIGNS = {"scalar": [1], "single": [1], "double": [1, -1]}


# ------------------------------------------------------------------------- settings ----


def rule_settings(cfg: dict) -> ss.RuleSettings:
    cv, pk, am = cfg["curvature"], cfg["polyak"], cfg["armijo"]
    return ss.RuleSettings(
        sigma=cv["sigma"],
        iters=cv["iters"],
        first_iters=cv["first_iters"],
        warm_noise=cv["warm_noise"],
        loss_star=pk["loss_star"],
        beta=am["beta"],
        c=am["c"],
        max_backtracks=am["max_backtracks"],
    )


def combined_cost(grads, hvps, loss_evals, cost: dict):
    """Gradient evaluations plus the weighted Hessian-vector products and loss evaluations."""
    return grads + cost["hvp_weight"] * hvps + cost["loss_weight"] * loss_evals


# ---------------------------------------------------------------------------- starts ----


def scalar_init(kind: str, L: int, r: float, gen: torch.Generator, block: dict) -> torch.Tensor:
    """Initial scalar weights [L] of a start (`linear.starts.init_scalar` with the block's settings)."""
    return starts.init_scalar(
        kind,
        L,
        r,
        gen,
        block["perturbation"],
        block["random_spread"],
        block["large_factor"],
        block["gaussian_std"],
    )


# ------------------------------------------------------------------------------ runs ----


def _expand(
    instances: list[dict], rules: list[str], factors: list[float], cfg: dict, refresh=(1,), published=True
) -> pd.DataFrame:
    """One row per run: each instance times (every rule but curvature per step factor, the
    curvature rule once per refresh interval, and the published-default baselines)."""
    pub = cfg["published"]
    first = {"armijo": pub["armijo_trial"], "adgd": pub["adgd_first_step"], "polyak": np.nan}
    rows = []

    def run(inst, tag, rule, setting, f=np.nan, d0=np.nan, cap=np.inf, k=0):
        rows.append({**inst, "run_id": f"{inst['instance']}_{tag}", "rule": rule, "setting": setting,
                     "refresh_every": k, "delta_factor": f, "delta0": d0, "cap": cap})  # fmt: skip

    for inst in instances:
        ref = inst["delta_ref"]
        for rule in rules:
            if rule == "curvature":
                for k in refresh:
                    run(
                        inst,
                        f"curvature_r{k}",
                        rule,
                        "curvature",
                        cap=cfg["curvature"]["cap_factor"] * ref,
                        k=k,
                    )
                continue
            for f in factors:
                cap = cfg["polyak"]["cap"] * f * ref if rule == "polyak" else np.inf
                run(inst, f"{rule}_x{f:g}", rule, "grid", f, f * ref, cap)
        for rule in pub["rules"] if published else []:
            run(inst, f"{rule}_published", rule, "published", d0=first[rule])
    return pd.DataFrame(rows)


def _outcomes(runs: pd.DataFrame, res: ss.DescentResult, sharp: np.ndarray, cost: dict) -> pd.DataFrame:
    ref = runs["delta_ref"].to_numpy()
    runs["status"] = res.status
    runs["final_loss"] = res.final_loss
    runs["start_loss"] = res.log_loss[0]
    runs["peak_loss"] = res.peak_loss
    runs["steps_to_tol"] = res.steps_to_tol
    runs["stopped_step"] = res.stopped_step
    runs["grads"] = res.grads
    runs["hvps"] = res.hvps
    runs["loss_evals"] = res.loss_evals
    runs["cost"] = combined_cost(res.grads, res.hvps, res.loss_evals, cost)
    runs["last_step"] = res.last_step
    runs["last_factor"] = res.last_step / ref
    runs["max_factor"] = res.max_step / ref
    runs["cap_hits"] = res.cap_hits
    sharp = np.where(res.status == "diverged", np.nan, sharp)
    runs["sharpness"] = sharp
    runs["edge"] = sharp * res.last_step / 2
    return runs


def _oracle(runs: pd.DataFrame, a_priori_factor: float) -> pd.DataFrame:
    """Per instance: reachable (some fixed step converged), the best fixed step in hindsight
    (cheapest converged fixed run: its cost, gradient evaluations and factor) and each run's
    cost ratio to it; the a-priori fixed step's cost (+inf where it did not converge) and each
    run's cost ratio to that (+inf where the run did not converge)."""
    fixed = runs[(runs["rule"] == "fixed") & (runs["status"] == "converged")]
    best = fixed.sort_values(["cost", "delta_factor"]).groupby("instance").first()
    runs["reachable"] = runs["instance"].isin(best.index)
    runs["oracle_cost"] = runs["instance"].map(best["cost"]).astype(float)
    runs["oracle_grads"] = runs["instance"].map(best["grads"]).astype(float)
    runs["oracle_factor"] = runs["instance"].map(best["delta_factor"]).astype(float)
    conv = runs["status"] == "converged"
    runs["cost_ratio"] = np.where(conv, runs["cost"] / runs["oracle_cost"], np.nan)
    prior = fixed[np.isclose(fixed["delta_factor"], a_priori_factor)].set_index("instance")["cost"]
    runs["prior_cost"] = runs["instance"].map(prior).astype(float).fillna(np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        runs["prior_ratio"] = np.where(conv, runs["cost"] / runs["prior_cost"], np.inf)
    return runs


def _curves(runs: pd.DataFrame, res: ss.DescentResult) -> pd.DataFrame:
    T, B = res.log_loss.shape
    df = pd.DataFrame(
        {
            "study": "stepsize",
            "run_id": np.tile(runs["run_id"].to_numpy(dtype=object), T),
            "step": np.repeat(res.log_steps, B).astype(np.int64),
            "loss": res.log_loss.reshape(-1),
            "step_size": res.log_step.reshape(-1),
        }
    )
    return df[np.isfinite(df["loss"])].reset_index(drop=True)


def _descend(cfg, runs, R, chains, signs, iterations, key, D, log):
    """Run the batch; the curvature runs' Lanczos starts drawn from the shard's seed key."""
    start = torch.randn(len(runs), D, dtype=torch.float64, generator=generator(*key, "lanczos"))
    log(f"{len(runs)} runs ({', '.join(f'{k} {v}' for k, v in runs['rule'].value_counts().items())}), "
        f"{iterations} iterations")  # fmt: skip
    return ss.descend(
        R,
        chains,
        signs,
        runs["rule"].to_numpy(),
        runs["delta0"].to_numpy(),
        runs["cap"].to_numpy(),
        iterations,
        Monitoring.from_config(cfg),
        rules=rule_settings(cfg),
        start=start,
        refresh=runs["refresh_every"].to_numpy(),
        armijo_chunk=32 if R.shape[-1] == 1 else 4,  # scalar: few large ops; matrix: few flops
        log=log,
    )


def _sharpness(cfg, R, res, signs, key, log) -> np.ndarray:
    """lambda_max at the final iterate of every run that did not diverge (NaN for those)."""
    log(f"sharpness at the end ({cfg['sharpness_iters']} Lanczos steps)")
    gen = generator(*key, "sharpness")
    iters, mask = cfg["sharpness_iters"], res.status != "diverged"
    return sharpness(R, res.chains, signs, iters=iters, gen=gen, mask=mask)[0]


def _positions(runs: pd.DataFrame, instances: list[dict]) -> np.ndarray:
    """Index of each run's instance in `instances`."""
    where = {d["instance"]: i for i, d in enumerate(instances)}
    return np.array([where[x] for x in runs["instance"]], dtype=np.int64)


def run_scalar(cfg: dict, L: int, log):
    """Scalar network: targets x starts x seeds at depth L, every rule and step factor."""
    block, base = cfg["scalar"], cfg["base_seed"]
    instances, w0s = [], []
    for r in block["targets"]:
        for init in block["inits"]:
            for seed in range(block["seeds"]):
                g = generator(base, "stepsize", "scalar", "init", L, r, init, seed)
                w0s.append(scalar_init(init, L, float(r), g, block))
                instances.append(
                    dict(
                        study="stepsize",
                        problem="scalar",
                        network="single",
                        instance=f"scalar_L{L}_r{r:g}_{init}_seed{seed}",
                        seed=seed,
                        depth=L,
                        n=1,
                        init=init,
                        target=float(r),
                        family="scalar",
                        delta_ref=float(theory.delta_star(L, r)),
                    )
                )
    runs = _expand(instances, cfg["rules"], cfg["factors"], cfg, cfg["curvature"]["refresh_every"])
    W0 = torch.stack(w0s)[torch.as_tensor(_positions(runs, instances))]  # [B, L]
    chains = [[W0[:, j].reshape(-1, 1, 1).contiguous() for j in range(L)]]
    R = torch.tensor(runs["target"].to_numpy(), dtype=torch.float64).reshape(-1, 1, 1)
    key = (base, "stepsize", "scalar", L)
    res = _descend(cfg, runs, R, chains, [1], block["iterations"], key, L, log)
    sharp = _sharpness(cfg, R, res, [1], key, log)
    runs["iterations"] = block["iterations"]
    runs = _outcomes(runs, res, sharp, cfg["cost"])
    final_w = flat_weights(res.chains[0]).numpy()
    runs["final_product"] = np.prod(final_w, axis=1)
    return _oracle(runs, cfg["a_priori_factor"]), _curves(runs, res)


def run_matrix(cfg: dict, network: str, L: int, log):
    """n x n single or double network: target families x starts x seeds at depth L."""
    block, base = cfg["matrix"], cfg["base_seed"]
    n, signs = block["n"], SIGNS[network]
    instances, inits, targets = [], [], []
    for fam in block["families"]:
        for seed in range(block["seeds"]):
            tg = generator(base, "stepsize", "matrix", "target", fam["name"], seed)
            target = starts.random_target(n, fam["low"], fam["high"], fam["eigvec"], tg)
            for init in block["inits"]:
                g = generator(base, "stepsize", "matrix", "init", network, L, fam["name"], init, seed)
                inits.append([starts.init_chain(init, L, n, g, block["large_factor"]) for _ in signs])
                targets.append(target.R)
                instances.append(
                    dict(
                        study="stepsize",
                        problem="matrix",
                        network=network,
                        instance=f"{network}_L{L}_{fam['name']}_{init}_seed{seed}",
                        seed=seed,
                        depth=L,
                        n=n,
                        init=init,
                        target=np.nan,
                        family=fam["name"],
                        rho=target.rho,
                        sigma_max=target.sigma_max,
                        cond_eigvec=target.cond_eigvec,
                        eig_min=target.eig_min,
                        delta_ref=float(theory.delta_relative(1.0, L, target.sigma_max)),
                    )
                )
    runs = _expand(instances, cfg["rules"], cfg["factors"], cfg, cfg["curvature"]["refresh_every"])
    pick = torch.as_tensor(_positions(runs, instances))
    dtype = DTYPES[block["dtype"]]
    R = torch.stack(targets)[pick].to(dtype)
    chains = [
        [torch.stack([w[c][j] for w in inits])[pick].to(dtype) for j in range(L)] for c in range(len(signs))
    ]
    key = (base, "stepsize", network, L)
    res = _descend(cfg, runs, R, chains, signs, block["iterations"], key, len(signs) * L * n * n, log)
    sharp = _sharpness(cfg, R, res, signs, key, log)
    runs["iterations"] = block["iterations"]
    runs = _outcomes(runs, res, sharp, cfg["cost"])
    return _oracle(runs, cfg["a_priori_factor"]), _curves(runs, res)


def basin_grid(block: dict, L: int) -> np.ndarray:
    """Initial weights [P, L] of the basin map: (w1, w2) on a square grid of `points`^2 values
    in [-extent, extent]^2, the other weights (L >= 3) at `slice`."""
    axis = np.linspace(-block["extent"], block["extent"], block["points"])
    w1, w2 = np.meshgrid(axis, axis, indexing="ij")
    grid = np.full((w1.size, L), float(block["slice"]))
    grid[:, 0], grid[:, 1] = w1.reshape(-1), w2.reshape(-1)
    return grid


def run_basin(cfg: dict, L: int, log) -> pd.DataFrame:
    """Region of attraction of the scalar network at depth L: every rule and basin factor from
    every point of the grid of initial weights."""
    block, base = cfg["basin"], cfg["base_seed"]
    r = float(block["target"])
    grid = basin_grid(block, L)
    instances = [
        dict(
            instance=f"basin_L{L}_p{i}", point=i, depth=L, target=r, delta_ref=float(theory.delta_star(L, r))
        )
        for i in range(len(grid))
    ]
    runs = _expand(
        instances, cfg["rules"], block["factors"], cfg, published=False
    )  # curvature: every iterate
    W0 = torch.as_tensor(grid[runs["point"].to_numpy()], dtype=torch.float64)
    chains = [[W0[:, j].reshape(-1, 1, 1).contiguous() for j in range(L)]]
    R = torch.full((len(runs), 1, 1), r, dtype=torch.float64)
    res = _descend(cfg, runs, R, chains, [1], block["iterations"], (base, "stepsize", "basin", L), L, log)
    out = runs[["run_id", "depth", "target", "rule", "delta_factor", "delta0", "delta_ref"]].copy()
    out.insert(0, "study", "stepsize")
    for j, name in enumerate(("w1", "w2", "w3")):
        out[name] = grid[runs["point"].to_numpy(), j] if j < L else np.nan
    out["iterations"] = block["iterations"]
    out["status"] = res.status
    out["final_loss"] = res.final_loss
    out["steps_to_tol"] = res.steps_to_tol
    out["cost"] = combined_cost(res.grads, res.hvps, res.loss_evals, cfg["cost"])
    final_w = flat_weights(res.chains[0]).numpy()
    out["final_product"] = np.prod(final_w, axis=1)
    return out


def run_shard(cfg: dict, shard: Shard) -> dict[str, pd.DataFrame]:
    """Tables `runs` and `curves` of a problem's shard, or `basins` of a basin map's shard."""
    torch.set_flush_denormal(True)
    depth, problem = int(shard["depth"]), shard.wildcards.get("problem")
    shard.log(f"{problem or 'basin map'} at depth {depth}")
    if problem is None:
        return {"basins": run_basin(cfg, depth, shard.log)}
    if problem == "scalar":
        runs, curves = run_scalar(cfg, depth, shard.log)
    else:
        runs, curves = run_matrix(cfg, problem, depth, shard.log)
    return {"runs": runs.drop(columns=["cap"]), "curves": curves}
