"""Benchmark of the batched stability engine (not a test): prints ratios measured in one run.

1. Batched engine vs a per-run loop of plain torch.nn layers with torch.optim.SGD on the same
   grid (n = 10, L = 8, 500 steps; the loop is timed on --loop-runs runs and scaled).
2. Achieved GFLOP/s of the engine (its batched matmuls, 3 (L - 1) per step of 2 n^3 each) as
   a fraction of a large float32 matmul measured in the same run.
Writes the numbers as JSON (--json). Cores shared with other work make both ratios noisy.

    .venv/bin/python bench/bench_stability.py [--runs 2000] [--reps 1] [--threads 2]
"""

from __future__ import annotations

import time

import torch
from common import matmul_gflops, parser, write_json

from pipeline.linear import starts, theory
from pipeline.linear.descent import gradient_descent
from pipeline.linear.status import Monitoring


def engine_seconds(runs, n, L, steps, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    targets = [starts.random_target(n, 0.2, 2.0, "orthogonal", g) for _ in range(runs)]
    R = torch.stack([t.R for t in targets]).to(dtype)
    delta = torch.tensor([0.5 * theory.delta_t1(L, t.rho) for t in targets], dtype=dtype)
    chains = [[torch.eye(n, dtype=dtype).expand(runs, n, n).clone() for _ in range(L)]]
    t0 = time.perf_counter()
    res = gradient_descent(
        R, chains, [1], delta, steps, Monitoring(tol=1e-8, tol_window=1, blowup=1e8, log_points=40)
    )
    return time.perf_counter() - t0, res


def loop_seconds(runs, n, L, steps):
    """The same runs done one by one as nn.Linear layers trained with optim.SGD (whitened data)."""
    g = torch.Generator().manual_seed(0)
    t_total = 0.0
    for _ in range(runs):
        t = starts.random_target(n, 0.2, 2.0, "orthogonal", g)
        R = t.R.float()
        X = torch.linalg.qr(torch.randn(n, n, generator=g))[0] * n**0.5  # X X^T / N = I
        Y = R @ X
        layers = [torch.nn.Linear(n, n, bias=False) for _ in range(L)]
        for layer in layers:
            torch.nn.init.eye_(layer.weight)
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=0.5 * float(theory.delta_t1(L, t.rho)))
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss = 0.5 * ((model(X.T) - Y.T) ** 2).sum() / n
            loss.backward()
            opt.step()
        t_total += time.perf_counter() - t0
    return t_total


def main():
    p = parser("bench_stability", __doc__, reps=1, threads=torch.get_num_threads())
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--loop-runs", type=int, default=20)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--steps", type=int, default=500)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    big = matmul_gflops()
    eng, res = min((engine_seconds(a.runs, a.n, a.depth, a.steps) for _ in range(a.reps)), key=lambda x: x[0])
    loop = loop_seconds(a.loop_runs, a.n, a.depth, a.steps) * a.runs / a.loop_runs
    big = max(big, matmul_gflops())
    flops = a.runs * a.steps * 3 * (a.depth - 1) * 2 * a.n**3
    out = {
        "runs": a.runs,
        "n": a.n,
        "depth": a.depth,
        "steps": a.steps,
        "engine_s": eng,
        "loop_s_scaled": loop,
        "speedup_vs_loop": loop / eng,
        "engine_gflops": flops / eng / 1e9,
        "matmul_gflops": big,
        "fraction_of_matmul": flops / eng / 1e9 / big,
        "converged_fraction": float((res.status == "converged").mean()),
        "threads": torch.get_num_threads(),
    }
    print(f"engine: {a.runs} runs x L={a.depth} x {a.n}x{a.n} x {a.steps} steps in {eng:.2f} s")
    print(f"per-run nn.Linear + optim.SGD loop (scaled from {a.loop_runs} runs): {loop:.1f} s")
    print(f"speed-up of the engine over the loop: {out['speedup_vs_loop']:.0f}x")
    print(
        f"engine {out['engine_gflops']:.1f} GFLOP/s = {100 * out['fraction_of_matmul']:.1f}% of a 2048^3 "
        f"float32 matmul ({big:.0f} GFLOP/s)"
    )
    write_json(a.json, out)


if __name__ == "__main__":
    main()
