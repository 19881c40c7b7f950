"""Benchmark of the batched step-size engine (not a test): prints ratios measured in one run.

1. The curvature-controlled step (warm-started Lanczos every `every` iterations) on --runs
   runs as one batch (`pipeline.stepsize.model.descend`) vs the same runs one at a time (the
   same engine with a batch of one; timed on --loop-runs runs and scaled): n = 10 single
   network, L = 4, identity start, random symmetric targets, a fixed budget (tol = 0, so
   every run does every iteration in both).
2. The same for the whole mix of rules of a shard (fixed, curvature, Polyak, AdGD, Armijo at
   the step factors of config.yaml), scalar network L = 16.
3. The cost weights of config.yaml set beside measured times on a batch: one Hessian-vector
   product (after the graph is built) and one loss, each relative to one loss-and-gradient
   evaluation of the engine.
Writes the numbers as JSON (--json). Cores shared with other work make the ratios noisy.

    .venv/bin/python bench/bench_stepsize.py [--runs 1000] [--reps 3] [--threads 1]
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from common import alternate, parser, write_json

from pipeline.config import load_config
from pipeline.linear import network, starts, theory
from pipeline.linear.status import Monitoring
from pipeline.stepsize import model as ss
from pipeline.stepsize.study import rule_settings


def curvature_batch(runs, n, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = torch.stack([starts.random_target(n, 0.2, 2.0, "orthogonal", g).R for _ in range(runs)])
    chains = [[torch.eye(n, dtype=torch.float64).expand(runs, n, n).clone() for _ in range(L)]]
    start = torch.randn(runs, L * n * n, dtype=torch.float64, generator=g)
    return R, chains, ["curvature"] * runs, np.full(runs, np.nan), np.full(runs, 1e3), start


def mixed_scalar_batch(instances, L, factors, seed=0):
    g = torch.Generator().manual_seed(seed)
    rules, d0, w0 = [], [], []
    ref = float(theory.delta_star(L, 2.0))
    for _ in range(instances):
        w = starts.init_scalar("random", L, 2.0, g, 0.05, 0.5)
        for rule in ss.RULES:
            for f in [np.nan] if rule == "curvature" else factors:
                rules.append(rule)
                d0.append(f * ref)
                w0.append(w)
    B = len(rules)
    W = torch.stack(w0)
    chains = [[W[:, j].reshape(B, 1, 1).contiguous() for j in range(L)]]
    R = torch.full((B, 1, 1), 2.0, dtype=torch.float64)
    cap = np.where(np.array(rules) == "curvature", 100 * ref, np.inf)
    cap = np.where(np.array(rules) == "polyak", np.array(d0), cap)
    start = torch.randn(B, L, dtype=torch.float64, generator=g)
    return R, chains, rules, np.array(d0), cap, start


def batched_vs_loop(batch, iterations, kw, loop_runs):
    R, chains, rules, d0, cap, start = batch
    B = R.shape[0]
    t0 = time.perf_counter()
    ss.descend(R, chains, [1], rules, d0, cap, iterations, start=start, **kw)
    batched = time.perf_counter() - t0
    pick = np.linspace(0, B - 1, loop_runs).astype(int)
    t0 = time.perf_counter()
    for b in pick:
        sl = slice(int(b), int(b) + 1)
        ss.descend(R[sl], [[w[sl] for w in ws] for ws in chains], [1], rules[sl], d0[sl], cap[sl],
                   iterations, start=start[sl], **kw)  # fmt: skip
    loop = (time.perf_counter() - t0) * B / loop_runs
    return batched, loop


def cost_weights(runs, n, L, reps):
    R, chains, *_ = curvature_batch(runs, n, L, seed=1)
    chains = [[w + 0.1 for w in chains[0]]]
    hvp, D = network.hessian_vector_product(R, chains, [1])
    v = torch.randn(runs, D, dtype=torch.float64)
    t = alternate(
        {
            "grad": lambda: network.loss_and_gradients(R, chains, [1]),
            "hvp": lambda: hvp(v),
            "hvp_with_graph": lambda: network.hessian_vector_product(R, chains, [1])[0](v),
            "loss": lambda: network.loss(R, chains, [1]),
        },
        reps,
    )
    return {k: t[k] / t["grad"] for k in ("hvp", "hvp_with_graph", "loss")}


def main():
    p = parser("bench_stepsize", __doc__, reps=3, threads=1)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--loop-runs", type=int, default=10)
    p.add_argument("--iterations", type=int, default=200)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config()["stepsize"]
    kw = {"monitoring": replace(Monitoring.from_config(cfg), tol=0.0), "rules": rule_settings(cfg)}
    n, L = 10, 4
    res = [
        batched_vs_loop(curvature_batch(a.runs, n, L), a.iterations, kw, a.loop_runs) for _ in range(a.reps)
    ]
    cv_batched, cv_loop = min(r[0] for r in res), min(r[1] for r in res)
    instances = max(1, a.runs // (1 + 4 * len(cfg["factors"])))
    mix = mixed_scalar_batch(instances, 16, cfg["factors"])
    res = [batched_vs_loop(mix, a.iterations, kw, a.loop_runs) for _ in range(a.reps)]
    mx_batched, mx_loop = min(r[0] for r in res), min(r[1] for r in res)
    weights = cost_weights(a.runs, n, L, max(15, a.reps))
    out = {
        "runs": a.runs,
        "iterations": a.iterations,
        "curvature_matrix": {"n": n, "depth": L, "batched_s": cv_batched, "loop_s_scaled": cv_loop,
                             "speedup": cv_loop / cv_batched},
        "mixed_scalar": {"depth": 16, "runs": int(mix[0].shape[0]), "batched_s": mx_batched,
                         "loop_s_scaled": mx_loop, "speedup": mx_loop / mx_batched},
        "measured_time_over_gradient": weights,
        "declared_weights": dict(cfg["cost"]),
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    cm, ms = out["curvature_matrix"], out["mixed_scalar"]
    print(f"curvature step, {a.runs} runs, n = {n}, L = {L}, {a.iterations} iterations:")
    print(f"  batched {cv_batched:.2f} s; one run at a time (scaled from {a.loop_runs}): {cv_loop:.1f} s")
    print(f"  speed-up of the batch over the per-run loop: {cm['speedup']:.0f}x")
    print(
        f"all rules, {ms['runs']} scalar runs, L = 16: batched {mx_batched:.2f} s, "
        f"one at a time {mx_loop:.1f} s"
    )
    print(f"  speed-up: {ms['speedup']:.0f}x")
    w = weights
    print(
        f"time / loss-and-gradient: HVP {w['hvp']:.2f} (with its graph {w['hvp_with_graph']:.2f}), "
        f"loss {w['loss']:.2f}; declared weights: HVP {cfg['cost']['hvp_weight']}, "
        f"loss {cfg['cost']['loss_weight']}"
    )
    write_json(a.json, out)


if __name__ == "__main__":
    main()
