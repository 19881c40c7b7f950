"""Benchmark: the batched pair trainer (hand-written gradients) against its peers, interleaved.

Same runs (the default config's targets x intervals x seeds at one depth), same data, same
initial parameters, same number of full-batch Nesterov steps with projection; float64, one
thread. Peers: `autograd` (batched autograd on four leaf tensors), `vmap_grad`
(`torch.func.vmap(torch.func.grad)` of one run's loss) and `loop` (one torch.nn.Module +
torch.optim.SGD(nesterov=True) per run, timed on --loop-runs runs and scaled). Prints the
times, the speed-ups and the largest parameter difference to the loop at the end (the two
compute the same iterates), and writes them as JSON. Also times one round of the exact kink
search (docs/science.md 6.2, `exact_search.exact_kink_search`) on the shard's kink-search runs
against one gradient step of the whole shard, both per run (the costs behind the seconds to fit
of claim 9).

    .venv/bin/python bench/bench_bias1d.py [--iterations 100] [--depth 20] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import numpy as np
import torch
from common import Conditions, alternate, parser, speedups, write_json

from pipeline.bias1d import model as nets
from pipeline.bias1d import plan, study
from pipeline.bias1d.exact_search import exact_kink_search
from pipeline.bias1d.reference import train_one_by_one
from pipeline.bias1d.summary import SEARCH
from pipeline.config import load_config


def pair_loss(w, b, a, c, x, y):
    """The loss of every run, summed, from separate leaves (w, b: [L, R, 2]; a: [R, 2]; c: [R])."""
    z = x.unsqueeze(1).expand(-1, 2, -1)
    for i in range(w.shape[0]):
        z = z + w[i].unsqueeze(-1) * torch.relu(z - b[i].unsqueeze(-1))
    f = z[:, 0] * a[:, 0:1] - z[:, 1] * a[:, 1:2] + c.unsqueeze(-1)
    return 0.5 * ((f - y) ** 2).mean(-1).sum()


def nesterov(leaves, grads, vel, lr, momentum):
    """torch.optim.SGD(nesterov=True)'s update and the projection w >= 0, a >= 0, in place."""
    with torch.no_grad():
        for t, g, v in zip(leaves, grads, vel, strict=True):
            v.mul_(momentum).add_(g)
            t.add_(g.add(v, alpha=momentum), alpha=-lr)
        leaves[0].clamp_(min=0)
        leaves[2].clamp_(min=0)


def autograd_peer(p0, x, y, lr, momentum, iterations):
    """Batched autograd on the runs as four leaf tensors (the layout a PyTorch user would pick)."""

    def run():
        leaves = [t.detach().clone().requires_grad_(True) for t in (p0.w, p0.b, p0.a, p0.c)]
        vel = [torch.zeros_like(t) for t in leaves]
        for _ in range(iterations):
            grads = torch.autograd.grad(pair_loss(*leaves, x, y), leaves)
            nesterov(leaves, grads, vel, lr, momentum)
        return leaves

    return run


def vmap_peer(p0, x, y, lr, momentum, iterations):
    """`torch.func.vmap(torch.func.grad(loss of one run))` over the runs."""

    def one(w, b, a, c, xr, yr):
        return pair_loss(w.unsqueeze(1), b.unsqueeze(1), a[None], c[None], xr[None], yr[None])

    grad = torch.func.vmap(torch.func.grad(one, argnums=(0, 1, 2, 3)), in_dims=(1, 1, 0, 0, 0, 0))

    def run():
        leaves = [t.detach().clone() for t in (p0.w, p0.b, p0.a, p0.c)]
        vel = [torch.zeros_like(t) for t in leaves]
        for _ in range(iterations):
            gw, gb, ga, gc = grad(*leaves, x, y)
            nesterov(leaves, [gw.transpose(0, 1), gb.transpose(0, 1), ga, gc], vel, lr, momentum)
        return leaves

    return run


def main(argv=None) -> dict:
    ap = parser("bench_bias1d", __doc__, reps=5, threads=1)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--depth", type=int, default=None, help="default: the config's first depth")
    ap.add_argument("--loop-runs", type=int, default=10, help="runs the per-run loop is timed on (scaled)")
    args = ap.parse_args(argv)
    cond = Conditions(args.threads, args.reps)

    cfg = load_config()["bias1d"]
    depth = args.depth or cfg["depths"][0]
    opt = cfg["optimizer"]
    runs = plan.plan(cfg, depth)
    keys = list(zip(runs["target"], runs["seed"], runs["noise_std"], strict=True))
    data = {k: plan.training_points(cfg, *k) for k in dict.fromkeys(keys)}
    x = torch.from_numpy(np.stack([data[k][0] for k in keys]))
    y = torch.from_numpy(np.stack([data[k][1] for k in keys]))
    p0 = study.initial_params(cfg, runs)
    lr, momentum, T = opt["lr"], opt["momenta"][-1], args.iterations
    few = np.arange(min(args.loop_runs, len(runs)))
    p_few, x_few, y_few = p0.select(few), x[few], y[few]

    searched = np.flatnonzero(runs["method"].eq(SEARCH).to_numpy())
    if not len(searched):  # the depth has no comparison: time the search on the main grid's runs
        searched = np.arange(len(runs))
    sub, xs, ys = p0.select(searched), x[searched], y[searched]
    grad, work = p0.like(), nets.Workspace(p0, x.shape[1])
    t = alternate(
        {
            "engine": lambda: nets.train_nesterov(p0.clone(), x, y, lr, momentum, T),
            "autograd": autograd_peer(p0, x, y, lr, momentum, T),
            "vmap_grad": vmap_peer(p0, x, y, lr, momentum, T),
            "loop": lambda: train_one_by_one(p_few.clone(), x_few, y_few, lr, momentum, T),
            "search_round": lambda: exact_kink_search(sub, xs, ys),
            "gradient_step": lambda: nets.gradients(p0, x, y, grad, work),
        },
        args.reps,
    )
    seconds = {k: t[k].median for k in ("engine", "autograd", "vmap_grad")}
    seconds["loop"] = t["loop"].median * len(runs) / len(few)
    fast = nets.train_nesterov(p_few.clone(), x_few, y_few, lr, momentum, T)[0]
    slow = train_one_by_one(p_few.clone(), x_few, y_few, lr, momentum, T)
    peers = {k: torch.cat([u.detach().flatten() for u in f()]) for k, f in
             (("autograd", autograd_peer(p_few, x_few, y_few, lr, momentum, T)),
              ("vmap_grad", vmap_peer(p_few, x_few, y_few, lr, momentum, T)))}  # fmt: skip
    per_run_search = t["search_round"].median / len(searched)
    per_run_step = t["gradient_step"].median / len(runs)
    result = {
        "runs": len(runs),
        "depth": depth,
        "points": int(x.shape[1]),
        "iterations": T,
        "loop_runs": len(few),
        "timings": {k: v.as_dict() for k, v in t.items()},
        "seconds_for_all_runs": seconds,
        **speedups(seconds, "engine"),
        "max_abs_param_diff_vs_loop": float((fast.flat - slow.flat).abs().max()),
        **{f"max_abs_param_diff_vs_{k}": float((fast.flat - v).abs().max()) for k, v in peers.items()},
        "search_runs": len(searched),
        "search_round_per_run_in_steps": per_run_search / per_run_step,
    }
    print(f"{len(runs)} runs, depth {depth}, {x.shape[1]} points, {T} Nesterov steps, float64:")
    for k, v in seconds.items():
        scale, note = (len(runs) / len(few), f" (scaled from {len(few)} runs)") if k == "loop" else (1, "")
        print(f"  {k:10s} {v:8.3f} s wall, {t[k].cpu * scale:.3f} s CPU{note}")
    print(
        "  engine speed-up: "
        + ", ".join(f"{k[16:]} {v:.1f}x" for k, v in result.items() if k.startswith("speedup_"))
    )
    print(
        f"  largest parameter difference to the per-run loop at the end: "
        f"{result['max_abs_param_diff_vs_loop']:.2e}\n"
        f"  one kink-search round of {len(searched)} runs {t['search_round'].median:.4f} s, one gradient "
        f"step of {len(runs)} runs {t['gradient_step'].median:.4f} s: per run, a round costs "
        f"{result['search_round_per_run_in_steps']:.0f} gradient steps"
    )
    write_json(args.json, result, cond)
    return result


if __name__ == "__main__":
    main()
