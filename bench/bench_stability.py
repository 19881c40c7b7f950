"""Benchmark of the batched stability engine against the peers a PyTorch user would write (not a
test): prints ratios measured in one run, contenders interleaved.

The problem: --runs deep linear networks W_L...W_1 (n x n, whitened data, identity start,
random symmetric targets, step 0.5 delta_T1), --steps full-batch gradient-descent steps, float32.
Contenders, each doing the same updates of every run:

- `engine`: `pipeline.linear.descent.gradient_descent` (hand-written gradients, runs-innermost
  layout, with the engine's monitoring);
- `autograd_bmm`: autograd on stacked [B, n, n] leaf tensors (one per layer) with torch.bmm;
- `compiled_bmm`: the same step under `torch.compile` (the CPU inductor backend);
- `vmap_grad`: `torch.func.vmap(torch.func.grad(loss_of_one_run))` over the runs;
- `loop`: one run at a time as nn.Linear layers with optim.SGD (timed on --loop-runs runs and
  scaled to --runs).
Also the engine's achieved GFLOP/s (3 (L - 1) products of 2 n^3 per step) as a fraction of a
large float32 matmul measured in the same run. Writes JSON (--json) with the load it ran under.

    .venv/bin/python bench/bench_stability.py [--runs 2000] [--steps 100] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import torch
from common import Conditions, alternate, matmul_gflops, parser, speedups, write_json

from pipeline.linear import starts, theory
from pipeline.linear.descent import gradient_descent
from pipeline.linear.status import Monitoring


def problem(runs, n, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = [starts.random_target(n, 0.2, 2.0, "orthogonal", g) for _ in range(runs)]
    R = torch.stack([t.R for t in targets]).float()
    delta = torch.tensor([0.5 * theory.delta_t1(L, t.rho) for t in targets], dtype=torch.float32)
    return R, delta


def identity_chain(runs, n, L):
    return [torch.eye(n).expand(runs, n, n).clone() for _ in range(L)]


def engine(R, delta, L, steps):
    monitoring = Monitoring(tol=0.0, tol_window=1, blowup=1e8, log_points=40)
    runs, n = R.shape[0], R.shape[-1]
    return lambda: gradient_descent(R, [identity_chain(runs, n, L)], [1], delta, steps, monitoring)


def bmm_loss(ws, R):
    P = ws[0]
    for w in ws[1:]:
        P = torch.bmm(w, P)
    return 0.5 * (R - P).pow(2).sum()


def autograd_step(ws, R, delta):
    grads = torch.autograd.grad(bmm_loss(ws, R), ws)
    with torch.no_grad():
        for w, g in zip(ws, grads, strict=True):
            w.sub_(delta[:, None, None] * g)


def autograd(R, delta, L, steps, step=autograd_step):
    runs, n = R.shape[0], R.shape[-1]

    def run():
        ws = [w.requires_grad_(True) for w in identity_chain(runs, n, L)]
        for _ in range(steps):
            step(ws, R, delta)
        return ws

    return run


def vmap_grad(R, delta, L, steps):
    runs, n = R.shape[0], R.shape[-1]

    def one_loss(ws, r):
        P = ws[0]
        for w in ws[1:]:
            P = w @ P
        return 0.5 * (r - P).pow(2).sum()

    grad = torch.func.vmap(torch.func.grad(one_loss))

    def run():
        ws = identity_chain(runs, n, L)
        for _ in range(steps):
            gs = grad(ws, R)
            ws = [w - delta[:, None, None] * g for w, g in zip(ws, gs, strict=True)]
        return ws

    return run


def loop(R, delta, L, steps):
    """One run at a time: nn.Linear layers and optim.SGD on data X with X X^T / N = I."""
    n = R.shape[-1]
    g = torch.Generator().manual_seed(1)
    X = torch.linalg.qr(torch.randn(n, n, generator=g))[0] * n**0.5

    def run():
        for r, d in zip(R, delta, strict=True):
            layers = [torch.nn.Linear(n, n, bias=False) for _ in range(L)]
            for layer in layers:
                torch.nn.init.eye_(layer.weight)
            model = torch.nn.Sequential(*layers)
            opt = torch.optim.SGD(model.parameters(), lr=float(d))
            Y = (r @ X).T
            for _ in range(steps):
                opt.zero_grad()
                loss = 0.5 * ((model(X.T) - Y) ** 2).sum() / n
                loss.backward()
                opt.step()

    return run


def compiled(R, delta, L, steps):
    """`autograd` with its step under torch.compile; None (and the reason) where it fails."""
    step = torch.compile(autograd_step, dynamic=False)
    run = autograd(R, delta, L, steps, step)
    try:
        run()
    except Exception as exc:  # noqa: BLE001 (a compiler that fails here is a finding, not a crash)
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return run, None


def main():
    p = parser("bench_stability", __doc__, reps=5, threads=1)
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--loop-runs", type=int, default=20)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--steps", type=int, default=100)
    a = p.parse_args()
    cond = Conditions(a.threads, a.reps)
    R, delta = problem(a.runs, a.n, a.depth)
    scale = {"loop": a.runs / a.loop_runs}
    contenders = {
        "engine": engine(R, delta, a.depth, a.steps),
        "autograd_bmm": autograd(R, delta, a.depth, a.steps),
        "vmap_grad": vmap_grad(R, delta, a.depth, a.steps),
        "loop": loop(R[: a.loop_runs], delta[: a.loop_runs], a.depth, a.steps),
    }
    run, compile_error = compiled(R, delta, a.depth, a.steps)
    if run is not None:
        contenders["compiled_bmm"] = run
    big = matmul_gflops()
    t = alternate(contenders, a.reps)
    big = max(big, matmul_gflops())
    seconds = {k: v.median * scale.get(k, 1.0) for k, v in t.items()}
    # the peers compute the same iterates: largest weight difference to the engine on a few runs
    few = slice(0, a.loop_runs)
    ref = engine(R[few], delta[few], a.depth, a.steps)().chains[0]
    peers = {"autograd_bmm": autograd, "vmap_grad": vmap_grad}
    diffs = {
        f"max_abs_weight_diff_vs_{k}": max(
            float((w.detach() - u).abs().max())
            for w, u in zip(f(R[few], delta[few], a.depth, a.steps)(), ref, strict=True)
        )
        for k, f in peers.items()
    }
    flops = a.runs * a.steps * 3 * (a.depth - 1) * 2 * a.n**3
    out = {
        "runs": a.runs,
        "n": a.n,
        "depth": a.depth,
        "steps": a.steps,
        "dtype": "float32",
        "loop_runs": a.loop_runs,
        "timings": {k: v.as_dict() for k, v in t.items()},
        "seconds_for_all_runs": seconds,
        **speedups(seconds, "engine"),
        "compile_error": compile_error,
        **diffs,
        "engine_gflops": flops / seconds["engine"] / 1e9,
        "matmul_gflops": big,
        "fraction_of_matmul": flops / seconds["engine"] / 1e9 / big,
    }
    print(f"{a.runs} runs x L = {a.depth} x {a.n}x{a.n} x {a.steps} steps, float32, {a.threads} thread(s):")
    for k, v in t.items():
        x = scale.get(k, 1.0)
        note = f" (scaled from {a.loop_runs} runs)" if k in scale else ""
        print(f"  {k:13s} {seconds[k]:8.2f} s  [min {v.min * x:.2f}, max {v.max * x:.2f}]{note}")
    print(
        "  engine speed-up: "
        + ", ".join(f"{k[16:]} {v:.1f}x" for k, v in out.items() if k.startswith("speedup_"))
    )
    if compile_error:
        print(f"  torch.compile failed: {compile_error}")
    print(
        f"  engine {out['engine_gflops']:.1f} GFLOP/s = {100 * out['fraction_of_matmul']:.1f}% of a 2048^3 "
        f"float32 matmul ({big:.0f} GFLOP/s)"
    )
    write_json(a.json, out, cond)


if __name__ == "__main__":
    main()
