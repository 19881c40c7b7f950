"""Benchmark of the edge study's batched engines (not a test): throughput in runs x iterations per second.

1. The trainability-map kernel (`pipeline.edge.maps.grouped_descent`, chunks of --chunk runs,
   L = 4 so that the kernel carries three numbers per run) on --runs runs against (a) the same
   update written per run in a Python loop over runs (timed on --loop-runs runs and scaled) and
   (b) `torch.func.vmap` of the one-run update over the batch, one call per iteration.
2. The scalar runs' engine (`pipeline.edge.model.gd_trace`: GD plus phi by the batched root find
   at every iteration, L = 8) on --runs / 16 runs against the same engine one run at a time.
Prints the ratios and writes JSON (--json) with the machine's load (/proc/loadavg) beside it:
numbers measured on a busy machine are drafts.

    .venv/bin/python bench/bench_edge.py [--runs 262144] [--iterations 100] [--reps 3] [--threads 1]
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from common import alternate, parser, write_json

from pipeline.edge import maps as mp
from pipeline.edge import model as em


def map_batch(runs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, runs)
    delta = rng.uniform(0.25, 2.0, runs) * float(em.delta_star(4, 1.0))
    return 1 + a, 1 - a, np.ones(runs), delta


def one_run_step(w, delta, others: int, r: float = 1.0):
    """One GD update of one grouped run `w = (w1, w2, v)` (what vmap and the loop apply)."""
    a, b, c = w[0], w[1], w[2]
    q = c ** (others - 1)
    e = (a * b * q * c - r) * delta
    return torch.stack([a - e * b * q * c, b - e * a * q * c, c - e * a * b * q])


def per_run_loop(batch, iterations: int, others: int):
    w1, w2, v, delta = batch
    for k in range(len(w1)):
        w = torch.tensor([w1[k], w2[k], v[k]], dtype=torch.float64)
        d = torch.tensor(delta[k], dtype=torch.float64)
        for _ in range(iterations):
            w = one_run_step(w, d, others)


def vmapped(batch, iterations: int, others: int):
    w1, w2, v, delta = batch
    w = torch.as_tensor(np.stack([w1, w2, v], axis=1))
    d = torch.as_tensor(delta)
    step = torch.func.vmap(lambda x, dx: one_run_step(x, dx, others))
    for _ in range(iterations):
        w = step(w, d)


def main():
    p = parser("bench_edge", __doc__, reps=3, threads=1)
    p.add_argument("--runs", type=int, default=262144)
    p.add_argument("--loop-runs", type=int, default=20)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--chunk", type=int, default=16384)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    load_before = os.getloadavg()
    L, others, T = 4, 2, a.iterations
    batch = map_batch(a.runs)
    small = tuple(x[: a.loop_runs] for x in batch)
    sec = alternate(
        {
            "batched": lambda: mp.grouped_descent(
                *batch[:3], others, 1.0, 1.0, batch[3], T, 1e12, 1e-20, a.chunk
            ),
            "vmap": lambda: vmapped(batch, T, others),
        },
        a.reps,
    )
    t0 = time.perf_counter()
    per_run_loop(small, T, others)
    loop = (time.perf_counter() - t0) * a.runs / a.loop_runs
    work = a.runs * T
    maps_out = {
        "depth": L,
        "runs": a.runs,
        "iterations": T,
        "chunk": a.chunk,
        "batched_run_iterations_per_s": work / sec["batched"],
        "vmap_run_iterations_per_s": work / sec["vmap"],
        "loop_run_iterations_per_s": work / loop,
        "batched_over_vmap": sec["vmap"] / sec["batched"],
        "batched_over_loop": loop / sec["batched"],
    }
    # 2. the scalar runs: GD with phi at every iteration
    n, Ls = max(1, a.runs // 16), 8
    g = torch.Generator().manual_seed(0)
    w0 = 1 + 0.3 * torch.randn(n, Ls, dtype=torch.float64, generator=g)
    phi0 = em.phi(w0, 2.0, 1.0)
    delta = (2 / phi0) * torch.empty(n, dtype=torch.float64).uniform_(0.1, 1.5, generator=g)
    t0 = time.perf_counter()
    em.gd_trace(w0, 2.0, 1.0, delta, T, [0, T])
    batched = time.perf_counter() - t0
    k = min(a.loop_runs, n)
    t0 = time.perf_counter()
    for b in range(k):
        em.gd_trace(w0[b : b + 1], 2.0, 1.0, delta[b : b + 1], T, [0, T])
    one = (time.perf_counter() - t0) * n / k
    scalar_out = {
        "depth": Ls,
        "runs": n,
        "iterations": T,
        "batched_run_iterations_per_s": n * T / batched,
        "loop_run_iterations_per_s": n * T / one,
        "batched_over_loop": one / batched,
    }
    out = {
        "draft": True,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "map_kernel": maps_out,
        "scalar_gd_trace": scalar_out,
    }
    m = maps_out
    print(f"map kernel, L = {L}, {a.runs} runs x {T} iterations (load {load_before[0]:.1f}):")
    print(
        f"  batched {m['batched_run_iterations_per_s'] / 1e6:.1f} M run-it/s, vmap "
        f"{m['vmap_run_iterations_per_s'] / 1e6:.2f} M, "
        f"per-run loop {m['loop_run_iterations_per_s'] / 1e3:.1f} k"
    )
    print(f"  batched / vmap {m['batched_over_vmap']:.1f}x, batched / loop {m['batched_over_loop']:.0f}x")
    s = scalar_out
    print(
        f"scalar gd_trace with phi, L = {Ls}, {n} runs: batched "
        f"{s['batched_run_iterations_per_s'] / 1e6:.2f} M run-it/s, one at a time "
        f"{s['loop_run_iterations_per_s'] / 1e3:.1f} k: {s['batched_over_loop']:.0f}x"
    )
    write_json(a.json, out)


if __name__ == "__main__":
    main()
