"""Benchmark: the batched pair trainer vs one torch.nn.Module + torch.optim.SGD(nesterov=True) per run.

Same runs (the default config's targets x intervals x seeds at one depth), same data, same
initial parameters, same number of full-batch steps; both in float64 on one thread. Prints the
wall and CPU times, their ratio and the largest parameter difference at the end (the two
compute the same iterates), and writes them as JSON. Also times one round of the exact kink
search (docs/science.md 6.2, `exact_search.exact_kink_search`) on the shard's kink-search runs
against one gradient step of the whole shard, both per run (the costs behind the seconds to fit
of claim 9).

    .venv/bin/python bench/bench_bias1d.py [--iterations 100] [--depth 20] [--reps 1] [--threads 1]
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import alternate, parser, write_json

from pipeline.bias1d import model as nets
from pipeline.bias1d import plan, study
from pipeline.bias1d.exact_search import exact_kink_search
from pipeline.bias1d.reference import train_one_by_one
from pipeline.bias1d.summary import SEARCH
from pipeline.config import load_config


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> dict:
    ap = parser("bench_bias1d", __doc__, reps=1, threads=1)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--depth", type=int, default=None, help="default: the config's first depth")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    cfg = load_config()["bias1d"]
    depth = args.depth or cfg["depths"][0]
    opt = cfg["optimizer"]
    runs = plan.plan(cfg, depth)
    keys = list(zip(runs["target"], runs["seed"], runs["noise_std"], strict=True))
    data = {k: plan.training_points(cfg, *k) for k in dict.fromkeys(keys)}
    x = torch.from_numpy(np.stack([data[k][0] for k in keys]))
    y = torch.from_numpy(np.stack([data[k][1] for k in keys]))
    p0 = study.initial_params(cfg, runs)

    momentum = opt["momenta"][-1]

    def batched():
        return nets.train_nesterov(p0.clone(), x, y, opt["lr"], momentum, args.iterations)[0]

    def one_by_one():
        return train_one_by_one(p0.clone(), x, y, opt["lr"], momentum, args.iterations)

    searched = np.flatnonzero(runs["method"].eq(SEARCH).to_numpy())
    if not len(searched):  # the depth has no comparison: time the search on the main grid's runs
        searched = np.arange(len(runs))
    sub, xs, ys = p0.select(searched), x[searched], y[searched]
    grad, work = p0.like(), nets.Workspace(p0, x.shape[1])
    costs = alternate(
        {
            "search_round": lambda: exact_kink_search(sub, xs, ys),
            "gradient_step": lambda: nets.gradients(p0, x, y, grad, work),
        },
        max(3, args.reps),
    )
    per_run_search = costs["search_round"] / len(searched)
    per_run_step = costs["gradient_step"] / len(runs)

    batched()  # warm-up
    fast, fast_wall, fast_cpu = min((timed(batched) for _ in range(args.reps)), key=lambda r: r[1])
    slow, slow_wall, slow_cpu = min((timed(one_by_one) for _ in range(args.reps)), key=lambda r: r[1])
    result = {
        "runs": len(runs),
        "depth": depth,
        "points": int(x.shape[1]),
        "iterations": args.iterations,
        "threads": args.threads,
        "batched_wall_s": fast_wall,
        "batched_cpu_s": fast_cpu,
        "per_run_module_wall_s": slow_wall,
        "per_run_module_cpu_s": slow_cpu,
        "ratio_wall": slow_wall / fast_wall,
        "ratio_cpu": slow_cpu / fast_cpu,
        "max_abs_param_diff": float((fast.flat - slow.flat).abs().max()),
        "search_runs": len(searched),
        "search_round_wall_s": costs["search_round"],
        "gradient_step_wall_s": costs["gradient_step"],
        "search_round_per_run_in_steps": per_run_search / per_run_step,
    }
    print(
        f"{len(runs)} runs, depth {depth}, {x.shape[1]} points, {args.iterations} Nesterov steps:\n"
        f"  batched trainer          {fast_wall:8.3f} s wall {fast_cpu:8.3f} s CPU\n"
        f"  nn.Module + SGD per run  {slow_wall:8.3f} s wall {slow_cpu:8.3f} s CPU\n"
        f"  ratio (wall)  {result['ratio_wall']:.1f}x   ratio (CPU)  {result['ratio_cpu']:.1f}x\n"
        f"  largest parameter difference at the end: {result['max_abs_param_diff']:.2e}\n"
        f"  one kink-search round of {len(searched)} runs {costs['search_round']:.4f} s, one gradient "
        f"step of {len(runs)} runs {costs['gradient_step']:.4f} s: per run, a round costs "
        f"{result['search_round_per_run_in_steps']:.0f} gradient steps"
    )
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
