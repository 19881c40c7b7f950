"""Benchmark of the edge study's batched engines (not a test): throughput in runs x iterations per second.

1. The trainability-map kernel (`pipeline.edge.maps.grouped_descent`, chunks of --chunk runs,
   L = 4 so that the kernel carries three numbers per run) on --runs runs against the peers, all
   interleaved: `vmap`, `torch.func.vmap` of the one-run update over the batch (one call per
   iteration); `autograd`, autograd on the [B, L] weights as one leaf tensor; `loop`, the
   one-run update in a Python loop over runs (timed on --loop-runs runs and scaled).
2. The scalar runs' engine (`pipeline.edge.model.gd_trace`: GD plus phi by the batched root find
   at every iteration, L = 8) on --runs / 16 runs against the same engine one run at a time.
Prints the ratios and writes JSON (--json) with the machine's load beside it.

    .venv/bin/python bench/bench_edge.py [--runs 65536] [--iterations 100] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import numpy as np
import torch
from common import Conditions, alternate, parser, speedups, write_json

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


def autograd_descent(batch, iterations: int, others: int, r: float = 1.0):
    """The runs as a [B, L] leaf tensor, gradients by autograd (no use of the repeated weights)."""
    w1, w2, v, delta = batch
    w = torch.as_tensor(np.stack([w1, w2, *[v] * others], axis=1)).requires_grad_(True)
    d = torch.as_tensor(delta)[:, None]
    for _ in range(iterations):
        loss = 0.5 * (w.prod(dim=1) - r).pow(2).sum()
        (g,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w.sub_(d * g)


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
    p = parser("bench_edge", __doc__, reps=5, threads=1)
    p.add_argument("--runs", type=int, default=65536)
    p.add_argument("--loop-runs", type=int, default=20)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--chunk", type=int, default=16384)
    a = p.parse_args()
    cond = Conditions(a.threads, a.reps)
    torch.set_flush_denormal(True)
    L, others, T = 4, 2, a.iterations
    batch = map_batch(a.runs)
    small = tuple(x[: a.loop_runs] for x in batch)
    t = alternate(
        {
            "engine": lambda: mp.grouped_descent(
                *batch[:3], others, 1.0, 1.0, batch[3], T, 1e12, 1e-20, a.chunk
            ),
            "vmap": lambda: vmapped(batch, T, others),
            "autograd": lambda: autograd_descent(batch, T, others),
            "loop": lambda: per_run_loop(small, T, others),
        },
        a.reps,
    )
    seconds = {k: v.median * (a.runs / a.loop_runs if k == "loop" else 1.0) for k, v in t.items()}
    work = a.runs * T
    maps_out = {
        "depth": L,
        "runs": a.runs,
        "iterations": T,
        "chunk": a.chunk,
        "loop_runs": a.loop_runs,
        "timings": {k: v.as_dict() for k, v in t.items()},
        "run_iterations_per_s": {k: work / v for k, v in seconds.items()},
        **speedups(seconds, "engine"),
    }
    # 2. the scalar runs: GD with phi at every iteration
    n, Ls = max(1, a.runs // 16), 8
    g = torch.Generator().manual_seed(0)
    w0 = 1 + 0.3 * torch.randn(n, Ls, dtype=torch.float64, generator=g)
    phi0 = em.phi(w0, 2.0, 1.0)
    delta = (2 / phi0) * torch.empty(n, dtype=torch.float64).uniform_(0.1, 1.5, generator=g)
    k = min(a.loop_runs, n)

    def one_at_a_time():
        for b in range(k):
            em.gd_trace(w0[b : b + 1], 2.0, 1.0, delta[b : b + 1], T, [0, T])

    ts = alternate(
        {"engine": lambda: em.gd_trace(w0, 2.0, 1.0, delta, T, [0, T]), "loop": one_at_a_time}, a.reps
    )
    sec_s = {"engine": ts["engine"].median, "loop": ts["loop"].median * n / k}
    scalar_out = {
        "depth": Ls,
        "runs": n,
        "iterations": T,
        "timings": {k: v.as_dict() for k, v in ts.items()},
        "run_iterations_per_s": {k: n * T / v for k, v in sec_s.items()},
        **speedups(sec_s, "engine"),
    }
    out = {"map_kernel": maps_out, "scalar_gd_trace": scalar_out}
    m = maps_out
    print(f"map kernel, L = {L}, {a.runs} runs x {T} iterations, run-iterations per second:")
    print("  " + ", ".join(f"{k} {v / 1e6:.3g} M" for k, v in m["run_iterations_per_s"].items()))
    print(
        "  engine speed-up: "
        + ", ".join(f"{k[16:]} {v:.1f}x" for k, v in m.items() if k.startswith("speedup_"))
    )
    sc = scalar_out
    print(
        f"scalar gd_trace with phi, L = {Ls}, {n} runs: engine "
        f"{sc['run_iterations_per_s']['engine'] / 1e6:.2f} M run-it/s, one at a time "
        f"{sc['run_iterations_per_s']['loop'] / 1e3:.1f} k: {sc['speedup_vs_peer_loop']:.0f}x"
    )
    write_json(a.json, out, cond)


if __name__ == "__main__":
    main()
