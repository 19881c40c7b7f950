"""Benchmark of the MNIST residual-pair model (not a test): prints ratios measured in one run.

1. Images/s of a full training step (forward, backward, fused Adam, projection) at the default
   size, and its GFLOP/s (3 x the forward matmul FLOPs) as a fraction of a large float32
   matmul timed in the same run.
2. The batched model (one `baddbmm` per layer over the 20 networks) vs a `ModuleList` loop over
   20 per-network models with the same maths and optimiser: the ratio of step times.

Timings alternate between the contenders, and medians are compared, so both sides see the same
machine load. Usage: .venv/bin/python bench/bench_mnist.py [--reps 10] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import torch
from common import alternate, parser, write_json
from torch import nn

from pipeline.config import load_config
from pipeline.mnist.model import ResidualPairs, loss_fn
from pipeline.mnist.train import make_optimizer

DEFAULT = load_config()["mnist"]


class OneNetwork(nn.Module):
    """One residual network with its own per-layer parameters (the un-batched baseline)."""

    def __init__(self, v, b, a):
        super().__init__()
        self.V = nn.ParameterList([nn.Parameter(t.clone()) for t in v])
        self.b = nn.ParameterList([nn.Parameter(t.clone()) for t in b])
        self.a = nn.Parameter(a.clone())

    def forward(self, x):
        z = x
        for v, b in zip(self.V, self.b, strict=True):
            z = torch.addmm(z, torch.relu(z - b), v)
        return z @ self.a


class LoopModel(nn.Module):
    """Same model as ResidualPairs('pair'), as a ModuleList of 20 networks run one by one."""

    def __init__(self, batched: ResidualPairs):
        super().__init__()
        self.front = batched  # conv parameters only are used from it
        self.nets = nn.ModuleList(
            OneNetwork([v[m] for v in batched.V], [b[m, 0] for b in batched.b], batched.a[m])
            for m in range(batched.m)
        )
        self.c = nn.Parameter(batched.c.detach().clone())

    def parameters(self, recurse=True):
        yield self.front.conv_weight
        yield self.front.conv_bias
        yield from self.nets.parameters()
        yield self.c

    def forward(self, images):
        x = self.front.features(images)
        y = torch.stack([net(x) for net in self.nets], dim=1)
        return y[:, :10] - y[:, 10:] + self.c

    def project(self):
        with torch.no_grad():
            for net in self.nets:
                for v in net.V:
                    v.clamp_(min=0)
                net.a.clamp_(min=0)


def make_step(model, batch):
    opt = make_optimizer(DEFAULT["optimizer"], list(model.parameters()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def step(update=True):
        loss = loss_fn(model(x), y, "mse")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if update:
            opt.step()
            model.project()

    return step


def main(argv=None) -> dict:
    ap = parser("bench_mnist", __doc__, reps=10, threads=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=DEFAULT["batch_size"])
    ap.add_argument("--depth", type=int, default=DEFAULT["depth"])
    ap.add_argument("--matmul", type=int, default=2048)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = {**DEFAULT, "depth": args.depth}
    torch.manual_seed(0)
    batched = ResidualPairs(cfg, "pair", torch.Generator().manual_seed(0))
    loop = LoopModel(ResidualPairs(cfg, "pair", torch.Generator().manual_seed(0)))
    step_batched, step_loop = make_step(batched, args.batch), make_step(loop, args.batch)
    a, b = torch.randn(args.matmul, args.matmul), torch.randn(args.matmul, args.matmul)
    contenders = {
        "batched": step_batched,
        "fwd_bwd": lambda: step_batched(update=False),
        "loop": step_loop,
        "matmul": lambda: a @ b,
    }
    med = alternate(contenders, args.reps)
    matmul = 2 * args.matmul**3 / med["matmul"] / 1e9
    step_flops = 3 * batched.flops_per_image() * args.batch  # forward + 2x backward, network layers only
    step_gflops = step_flops / med["batched"] / 1e9
    fwd_bwd_gflops = step_flops / med["fwd_bwd"] / 1e9
    out = {
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "depth": args.depth,
        "n": batched.n,
        "step_seconds_batched": med["batched"],
        "step_seconds_loop": med["loop"],
        "images_per_s": args.batch / med["batched"],
        "step_gflops": step_gflops,
        "matmul_gflops": matmul,
        "fraction_of_matmul": step_gflops / matmul,
        "fwd_bwd_seconds": med["fwd_bwd"],
        "fwd_bwd_fraction_of_matmul": fwd_bwd_gflops / matmul,
        "batched_vs_loop_speedup": med["loop"] / med["batched"],
    }
    print(
        f"training step (batch {args.batch}, L = {args.depth}, n = {batched.n}, 20 networks, "
        f"{torch.get_num_threads()} threads): {1e3 * med['batched']:.0f} ms"
        f" = {out['images_per_s']:.0f} images/s"
    )
    print(
        f"  {step_gflops:.0f} GFLOP/s vs {matmul:.0f} GFLOP/s for a {args.matmul}^3 float32 matmul: "
        f"{100 * out['fraction_of_matmul']:.0f}% (aim >= 50%)"
    )
    print(
        f"  forward + backward only (no Adam step, no projection): {1e3 * med['fwd_bwd']:.0f} ms, "
        f"{fwd_bwd_gflops:.0f} GFLOP/s = {100 * out['fwd_bwd_fraction_of_matmul']:.0f}% of the matmul"
    )
    print(
        f"batched vs ModuleList loop of 20 networks: {1e3 * med['loop']:.0f} ms"
        f" / {1e3 * med['batched']:.0f} ms "
        f"= {out['batched_vs_loop_speedup']:.2f}x (aim >= 1.5x)"
    )
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
