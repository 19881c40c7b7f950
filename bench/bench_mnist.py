"""Benchmark of the MNIST residual-pair model (not a test): prints ratios measured in one run.

1. Precision: a full training step (forward, backward, fused Adam, projection) of the default
   model in float32 and in bfloat16 (`mnist.precision`): the bf16/fp32 step-time ratio, and
   the bf16 step's GFLOP/s (3 x the forward matmul FLOPs) as a share of the bf16 peak measured
   in the same run (the larger of a big bf16 matmul and a bf16 `bmm` of the layer's shape).
   The same two steps at a larger batch (--batch-large) show how the ratio grows once the
   per-step parameter traffic (Adam's float32 state, the V casts, the projection) is spread
   over more images.
2. Alternatives to the model's bf16 layer loop, timed beside it: a first prototype
   (float32 ReLU, then cast), V cast to bf16 once per step for all layers, and autocast.
3. Evaluation (forward only, eval batch) in float32 and bfloat16.
4. The batched model (one `baddbmm` per layer over the 20 networks) vs a `ModuleList` loop over
   20 per-network models with the same maths and optimiser: the ratio of step times.
5. The step against its floor (`bf16_step_over_floor`, `fp32_step_over_floor`): the step's
   matmuls (3 x the forward FLOPs) at the rate of a `bmm` of the layer's shape in the same
   precision, plus one optimiser-and-projection pass over the parameters, all measured here.

Timings alternate between the contenders, and medians are compared, so all see the same
machine load (on a GPU each call ends with a synchronisation). The load average is recorded.
Usage: .venv/bin/python bench/bench_mnist.py [--reps 10] [--threads 2] [--device cpu|cuda]
       [--json PATH]
"""

from __future__ import annotations

import sys

import torch
from common import Conditions, alternate, parser, write_json
from torch import nn

from pipeline.config import load_config
from pipeline.mnist.model import ResidualPairs, loss_fn
from pipeline.mnist.train import make_optimizer

DEFAULT = load_config()["mnist"]
BF16 = torch.bfloat16


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


# Alternatives to ResidualPairs.networks in bfloat16 (residual variants), same numbers up to
# rounding order; the model's own loop is the contender "bf16".
class Prototype(ResidualPairs):
    """The first prototype: float32 ReLU (saved as float32 for backward), then cast."""

    def networks(self, x):
        z = x.unsqueeze(0).expand(self.m, -1, -1)
        for v, b in zip(self.V, self.b, strict=True):
            r = torch.relu(z - b)
            z = z + torch.bmm(r.to(BF16), v.to(BF16)).float()
        return z


class CastOnce(ResidualPairs):
    """Every V cast to bfloat16 in one pass before the layer loop."""

    def networks(self, x):
        vs = [v.to(BF16) for v in self.V]
        z = x.unsqueeze(0).expand(self.m, -1, -1)
        for v, b in zip(vs, self.b, strict=True):
            z = torch.add(z, torch.bmm(torch.relu((z - b).to(BF16)), v))
        return z


class Autocast(ResidualPairs):
    """torch.autocast picks the bmm's dtype; the stream is added in float32."""

    def networks(self, x):
        z = x.unsqueeze(0).expand(self.m, -1, -1)
        for v, b in zip(self.V, self.b, strict=True):
            r = torch.relu(z - b)
            with torch.autocast(z.device.type, dtype=BF16):
                update = torch.bmm(r, v)
            z = z + update.float()
        return z


def make_model(cls, cfg, precision, device):
    model = cls({**cfg, "precision": precision}, "pair", torch.Generator().manual_seed(0))
    model.project()
    return model.to(device)


def make_step(model, batch, device):
    opt = make_optimizer(DEFAULT["optimizer"], list(model.parameters()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step(update=True):
        loss = loss_fn(model(x), y, "mse")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if update:
            opt.step()
            model.project()

    return step


def make_optimizer_pass(model, batch, device):
    """One optimiser step and projection alone (gradients filled once beforehand): the
    parameter-traffic term of the step's floor."""
    step = make_step(model, batch, device)
    step(update=False)
    opt = make_optimizer(DEFAULT["optimizer"], [q for q in model.parameters() if q.grad is not None])

    def run():
        opt.step()
        model.project()

    return run


def make_eval(model, batch, device):
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(2)).to(device)

    @torch.no_grad()
    def forward():
        with model.frozen():  # as pipeline.mnist.model.evaluate: V cast once per evaluation
            model(x)

    return forward


def synced(fn, device):
    """`fn`, then wait for the GPU (CUDA work is asynchronous)."""
    if device.type != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


def main(argv=None) -> dict:
    ap = parser("bench_mnist", __doc__, reps=10, threads=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=DEFAULT["batch_size"])
    ap.add_argument("--batch-large", type=int, default=512, help="second batch size (0: skip)")
    ap.add_argument("--depth", type=int, default=DEFAULT["depth"])
    ap.add_argument("--matmul", type=int, default=2048, help="side of the square peak matmuls")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--no-loop", action="store_true", help="skip the ModuleList comparison")
    args = ap.parse_args(argv)
    cond = Conditions(args.threads, args.reps)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32, as in the runs
    cfg = {**DEFAULT, "depth": args.depth}
    torch.manual_seed(0)
    models = {
        "fp32": make_model(ResidualPairs, cfg, "float32", device),
        "bf16": make_model(ResidualPairs, cfg, "bfloat16", device),
        "bf16_prototype": make_model(Prototype, cfg, "bfloat16", device),
        "bf16_cast_once": make_model(CastOnce, cfg, "bfloat16", device),
        "bf16_autocast": make_model(Autocast, cfg, "bfloat16", device),
        "fp32_compiled": make_model(ResidualPairs, cfg, "float32", device),
        "bf16_compiled": make_model(ResidualPairs, cfg, "bfloat16", device),
    }
    for p in ("fp32", "bf16"):  # the pipeline's default (mnist.compile)
        models[f"{p}_compiled"].compile_training(sys.stderr)
    n, m, batch = models["fp32"].n, models["fp32"].m, args.batch
    contenders = {name: make_step(model, batch, device) for name, model in models.items()}
    contenders["fp32_fwd_bwd"] = lambda: contenders["fp32"](update=False)
    contenders["bf16_fwd_bwd"] = lambda: contenders["bf16"](update=False)
    if args.batch_large:
        for p in ("fp32", "bf16"):
            contenders[f"{p}_large"] = make_step(models[p], args.batch_large, device)
    for p in ("fp32", "bf16"):
        contenders[f"{p}_eval"] = make_eval(models[p], DEFAULT["eval_batch_size"], device)
        contenders[f"{p}_optimizer_pass"] = make_optimizer_pass(models[p], batch, device)
    if not args.no_loop and device.type == "cpu":
        loop = LoopModel(make_model(ResidualPairs, cfg, "float32", device))
        contenders["loop"] = make_step(loop, batch, device)
    a = torch.randn(args.matmul, args.matmul, device=device)
    a16 = a.to(BF16)
    r16 = torch.randn(m, batch, n, device=device).to(BF16)
    v16 = torch.randn(m, n, n, device=device).to(BF16)
    contenders["matmul_fp32"] = lambda: a @ a
    contenders["matmul_bf16"] = lambda: a16 @ a16
    contenders["bmm_bf16"] = lambda: torch.bmm(r16, v16)
    r32, v32 = r16.float(), v16.float()
    contenders["bmm_fp32"] = lambda: torch.bmm(r32, v32)
    timings = alternate({k: synced(f, device) for k, f in contenders.items()}, args.reps)
    med = {k: v.median for k, v in timings.items()}

    fwd_flops = models["fp32"].flops_per_image()  # network layers only (the conv is negligible)
    step_flops = 3 * fwd_flops * batch  # forward + 2x backward
    gf = {k: step_flops / med[k] / 1e9 for k in models}
    mm32 = 2 * args.matmul**3 / med["matmul_fp32"] / 1e9
    mm16 = 2 * args.matmul**3 / med["matmul_bf16"] / 1e9
    bmm16 = 2 * m * batch * n * n / med["bmm_bf16"] / 1e9
    bmm32 = 2 * m * batch * n * n / med["bmm_fp32"] / 1e9
    peak16 = max(mm16, bmm16)
    # the step's floor: its matmuls at the layer-shape bmm rate plus one optimiser-and-projection pass
    floor = {
        p: {"matmul_s": step_flops / rate / 1e9, "optimizer_pass_s": med[f"{p}_optimizer_pass"]}
        for p, rate in (("fp32", bmm32), ("bf16", bmm16))
    }
    over_floor = {
        k: med[k] / sum(floor[k[:4]].values()) for k in ("fp32", "bf16", "fp32_compiled", "bf16_compiled")
    }
    out = {
        "device": str(device),
        "timings": {k: v.as_dict() for k, v in timings.items()},
        "batch": batch,
        "depth": args.depth,
        "n": n,
        "step_seconds": {k: med[k] for k in models},
        "bf16_over_fp32_step_time": med["bf16"] / med["fp32"],
        "bf16_speedup": med["fp32"] / med["bf16"],
        "step_gflops": gf,
        "matmul_fp32_gflops": mm32,
        "matmul_bf16_gflops": mm16,
        "bmm_bf16_layer_shape_gflops": bmm16,
        "bmm_fp32_layer_shape_gflops": bmm32,
        "step_floor": floor,
        # the pipeline's step (compiled, mnist.compile: true) over its floor; the eager step beside it
        "bf16_step_over_floor": over_floor["bf16_compiled"],
        "fp32_step_over_floor": over_floor["fp32_compiled"],
        "bf16_eager_step_over_floor": over_floor["bf16"],
        "fp32_eager_step_over_floor": over_floor["fp32"],
        "compiled_speedup": {p: med[p] / med[f"{p}_compiled"] for p in ("fp32", "bf16")},
        "bf16_peak_gflops": peak16,
        "bf16_step_share_of_bf16_peak": gf["bf16"] / peak16,
        "fp32_step_share_of_fp32_peak": gf["fp32"] / mm32,
        "fwd_bwd_seconds": {"fp32": med["fp32_fwd_bwd"], "bf16": med["bf16_fwd_bwd"]},
        "optimizer_and_projection_seconds": {
            "fp32": med["fp32"] - med["fp32_fwd_bwd"],
            "bf16": med["bf16"] - med["bf16_fwd_bwd"],
        },
        "alternatives_over_model_bf16": {
            k: med[k] / med["bf16"] for k in ("bf16_prototype", "bf16_cast_once", "bf16_autocast")
        },
        "eval_images_per_s": {p: DEFAULT["eval_batch_size"] / med[f"{p}_eval"] for p in ("fp32", "bf16")},
    }
    if args.batch_large:
        out["batch_large"] = args.batch_large
        out["large_step_seconds"] = {p: med[f"{p}_large"] for p in ("fp32", "bf16")}
        out["bf16_speedup_large"] = med["fp32_large"] / med["bf16_large"]
        out["bf16_large_share_of_bf16_peak"] = (
            3 * fwd_flops * args.batch_large / med["bf16_large"] / 1e9 / peak16
        )
    if "loop" in med:
        out["step_seconds_loop"] = med["loop"]
        out["batched_vs_loop_speedup"] = med["loop"] / med["fp32"]

    where = f"{device}, {torch.get_num_threads()} threads" if device.type == "cpu" else str(device)
    print(
        f"training step (batch {batch}, L = {args.depth}, n = {n}, {m} networks, {where}): "
        f"float32 {1e3 * med['fp32']:.0f} ms, bfloat16 {1e3 * med['bf16']:.0f} ms"
    )
    for p in ("bf16", "fp32"):
        f = floor[p]
        print(
            f"  {p} compiled step {1e3 * med[f'{p}_compiled']:.0f} ms / floor ({1e3 * f['matmul_s']:.0f} ms "
            f"of matmuls at the layer-shape bmm rate + {1e3 * f['optimizer_pass_s']:.0f} ms optimiser and "
            f"projection): {out[f'{p}_step_over_floor']:.2f} (eager {over_floor[p]:.2f})"
        )
    print(
        f"  bf16 / fp32 step time: {out['bf16_over_fp32_step_time']:.2f} "
        f"(speedup {out['bf16_speedup']:.2f}x; aim >= 3x)"
    )
    print(
        f"  bf16 step {gf['bf16']:.0f} GFLOP/s = {100 * out['bf16_step_share_of_bf16_peak']:.0f}% of the "
        f"bf16 peak {peak16:.0f} GFLOP/s (matmul {args.matmul}^3: {mm16:.0f}, layer bmm: {bmm16:.0f}); "
        f"fp32 step {gf['fp32']:.0f} GFLOP/s = {100 * out['fp32_step_share_of_fp32_peak']:.0f}% of "
        f"the fp32 matmul's {mm32:.0f}"
    )
    opt = out["optimizer_and_projection_seconds"]
    print(f"  of which Adam + projection: fp32 {1e3 * opt['fp32']:.0f} ms, bf16 {1e3 * opt['bf16']:.0f} ms")
    if args.batch_large:
        print(
            f"  at batch {args.batch_large}: fp32 {1e3 * med['fp32_large']:.0f} ms, bf16 "
            f"{1e3 * med['bf16_large']:.0f} ms: speedup {out['bf16_speedup_large']:.2f}x, "
            f"{100 * out['bf16_large_share_of_bf16_peak']:.0f}% of the bf16 peak"
        )
    alts = ", ".join(f"{k[5:]} {v:.2f}" for k, v in out["alternatives_over_model_bf16"].items())
    print(f"  alternative bf16 layer loops, step time / the model's: {alts}")
    ev = out["eval_images_per_s"]
    eb = DEFAULT["eval_batch_size"]
    print(f"evaluation (forward, batch {eb}): fp32 {ev['fp32']:.0f} images/s, bf16 {ev['bf16']:.0f}")
    if "loop" in med:
        print(
            f"batched vs ModuleList loop of 20 networks (fp32): {1e3 * med['loop']:.0f} ms"
            f" / {1e3 * med['fp32']:.0f} ms = {out['batched_vs_loop_speedup']:.2f}x (aim >= 1.5x)"
        )
    write_json(args.json, out, cond)
    return out


if __name__ == "__main__":
    main()
