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
4. The engine's loss and gradients (`pipeline.linear.network.loss_and_gradients`: autograd on
   fresh leaves sharing the weights' storage) against autograd on leaves made once,
   `torch.func.vmap(torch.func.grad)` and the hand-written batched gradients it replaced
   (`hand_written`, kept here so that the choice can be checked again).
Contenders are interleaved; writes the numbers as JSON (--json) with the load they ran under.

    .venv/bin/python bench/bench_stepsize.py [--runs 1000] [--reps 5] [--threads 1]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from common import Conditions, alternate, parser, speedups, write_json

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
    """Contenders: the batch as one program, and the same engine one run at a time on
    `loop_runs` runs (scaled to the batch by the caller)."""
    R, chains, rules, d0, cap, start = batch
    pick = np.linspace(0, R.shape[0] - 1, loop_runs).astype(int)

    def one_at_a_time():
        for b in pick:
            sl = slice(int(b), int(b) + 1)
            ss.descend(R[sl], [[w[sl] for w in ws] for ws in chains], [1], rules[sl], d0[sl], cap[sl],
                       iterations, start=start[sl], **kw)  # fmt: skip

    return {
        "engine": lambda: ss.descend(R, chains, [1], rules, d0, cap, iterations, start=start, **kw),
        "loop": one_at_a_time,
    }


def hand_written(R, ws):
    """Loss and dl/dW of one chain written out by hand (three batched matmuls per layer), the
    engine's gradients until they were measured at 1.08-1.14x autograd: G = R - W_L...W_1, dl/dW_j =
    -(W_L...W_{j+1})^T G (W_{j-1}...W_1)^T."""
    prefix = [None]
    for w in ws:
        prefix.append(w if prefix[-1] is None else network.mm(w, prefix[-1]))
    G = R - prefix[-1]
    grads, M = [None] * len(ws), -G
    for j in range(len(ws) - 1, -1, -1):
        grads[j] = M if prefix[j] is None else network.mm(M, prefix[j].mT)
        if j > 0:
            M = network.mm_tn(ws[j], M)
    return 0.5 * (G * G).sum(dim=(-2, -1)), grads


def gradient_peers(R, chains):
    """The engine's loss and gradients against autograd on the same [B, n, n] leaf tensors,
    `torch.func.vmap(torch.func.grad)` of one run's loss, and the hand-written gradients."""
    leaves = [w.clone().requires_grad_(True) for w in chains[0]]

    def autograd():
        return torch.autograd.grad(network.loss(R, [leaves], [1]).sum(), leaves)

    def one_loss(ws, r):
        return network.loss(r[None], [[w[None] for w in ws]], [1]).sum()

    vgrad = torch.func.vmap(torch.func.grad(one_loss))
    return {
        "engine": lambda: network.loss_and_gradients(R, chains, [1]),
        "autograd": autograd,
        "vmap_grad": lambda: vgrad(chains[0], R),
        "hand_written": lambda: hand_written(R, chains[0]),
    }


def main():
    p = parser("bench_stepsize", __doc__, reps=5, threads=1)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--loop-runs", type=int, default=10)
    p.add_argument("--iterations", type=int, default=200)
    a = p.parse_args()
    cond = Conditions(a.threads, a.reps)
    cfg = load_config()["stepsize"]
    kw = {"monitoring": replace(Monitoring.from_config(cfg), tol=0.0), "rules": rule_settings(cfg)}
    n, L = 10, 4
    out = {"runs": a.runs, "iterations": a.iterations, "loop_runs": a.loop_runs}
    curv = curvature_batch(a.runs, n, L)
    instances = max(1, a.runs // (1 + 4 * len(cfg["factors"])))
    mix = mixed_scalar_batch(instances, 16, cfg["factors"])
    for name, batch, extra in (
        ("curvature_matrix", curv, {"n": n, "depth": L}),
        ("mixed_scalar", mix, {"depth": 16}),
    ):
        B = batch[0].shape[0]
        t = alternate(batched_vs_loop(batch, a.iterations, kw, a.loop_runs), a.reps)
        seconds = {"engine": t["engine"].median, "loop": t["loop"].median * B / a.loop_runs}
        out[name] = {**extra, "runs": B, "timings": {k: v.as_dict() for k, v in t.items()},
                     "seconds_for_all_runs": seconds, **speedups(seconds, "engine")}  # fmt: skip
    R, chains, *_ = curvature_batch(a.runs, n, L, seed=1)
    chains = [[w + 0.1 for w in chains[0]]]
    t = alternate(gradient_peers(R, chains), max(15, a.reps))
    out["gradient"] = {"n": n, "depth": L, "timings": {k: v.as_dict() for k, v in t.items()},
                       **speedups({k: v.median for k, v in t.items()}, "engine")}  # fmt: skip
    hvp, D = network.hessian_vector_product(R, chains, [1])
    v = torch.randn(a.runs, D, dtype=torch.float64)
    t = alternate(
        {
            "grad": lambda: network.loss_and_gradients(R, chains, [1]),
            "hvp": lambda: hvp(v),
            "hvp_with_graph": lambda: network.hessian_vector_product(R, chains, [1])[0](v),
            "loss": lambda: network.loss(R, chains, [1]),
        },
        max(15, a.reps),
    )
    out["measured_time_over_gradient"] = {
        k: t[k].median / t["grad"].median for k in ("hvp", "hvp_with_graph", "loss")
    }
    out["declared_weights"] = dict(cfg["cost"])
    for name in ("curvature_matrix", "mixed_scalar"):
        r, sec = out[name], out[name]["seconds_for_all_runs"]
        print(
            f"{name} ({r['runs']} runs, {a.iterations} iterations): batched {sec['engine']:.2f} s, "
            f"one run at a time (scaled from {a.loop_runs}) {sec['loop']:.1f} s: "
            f"{r['speedup_vs_peer_loop']:.0f}x"
        )
    g = out["gradient"]
    print(
        f"loss and gradients (n = {n}, L = {L}, {a.runs} runs): engine over autograd "
        f"{g['speedup_vs_peer_autograd']:.2f}x, over vmap(grad) {g['speedup_vs_peer_vmap_grad']:.2f}x, "
        f"over the hand-written gradients {g['speedup_vs_peer_hand_written']:.2f}x"
    )
    w = out["measured_time_over_gradient"]
    print(
        f"time / loss-and-gradient: HVP {w['hvp']:.2f} (with its graph {w['hvp_with_graph']:.2f}), "
        f"loss {w['loss']:.2f}; declared weights: HVP {cfg['cost']['hvp_weight']}, "
        f"loss {cfg['cost']['loss_weight']}"
    )
    write_json(a.json, out, cond)


if __name__ == "__main__":
    main()
