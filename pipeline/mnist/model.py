"""MNIST with convex-concave residual pairs (docs/science.md section 5): model and measurements.

Model: one convolution, max-pooling over non-overlapping windows, flattened to `x in R^n`;
then `M` residual networks `z_i = z_{i-1} + V_i [z_{i-1} - b_i]_+` (i = 1..L, `V_i >= 0`)
evaluated as ONE batched computation: layer i's weights of all networks are a single leaf
tensor `V_i` of shape `[M, n, n]` and the layer is one `torch.baddbmm` over the network
dimension. Each network ends in a non-negative output vector `a_m`, `y_m = a_m^T z_L^m`.

Variants (all trained by the same loop, `pipeline.mnist.train`):

- `pair` (the paper's model): M = 20, network k is g_k and network 10 + k is h_k,
  class score `s_k = g_k(x) - h_k(x) + c_k`; `V_i >= 0` and `a >= 0` by projection.
- `convex_only`: M = 10, one convex network per class, `s_k = g_k(x) + c_k`.
- `plain_mlp`: M = 20 as in `pair` but without the skip connection
  (`z_i = V_i [z_{i-1} - b_i]_+`) and without sign constraints; He-initialised V and a.

Precision (`mnist.precision`): `float32`, or `bfloat16`: every layer's matmul takes bfloat16
operands (the float32 master weights `V_i` are cast for it; its backward yields bfloat16
gradients, cast back to float32 for the optimiser), while the residual stream `z`, the update
`z + [z - b]_+ V` (a float32 add of the bfloat16 product), the output vectors, the loss and the
projection stay float32.

Storage: the parameter `V[i]` holds, for network m, the TRANSPOSE of the paper's `V_i`
(`z <- z + V[i][m]^T relu(z - b_i[m])` on column vectors, i.e. `z + relu(z - b) @ V[i][m]` on
row vectors), so the batched layer is a plain `baddbmm` whose weight gradient is contiguous
(no transposed copy per layer). Entrywise non-negativity, all that the model needs, is the same.
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import contextmanager

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import UserError

N_CLASSES = 10
VARIANTS = ("pair", "convex_only", "plain_mlp")
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of the layer matmuls for `mnist.precision` (float32 or bfloat16)."""
    if precision not in PRECISIONS:
        raise UserError(f"Unknown mnist.precision '{precision}'; choose {' or '.join(PRECISIONS)}.")
    return PRECISIONS[precision]


def n_networks(variant: str) -> int:
    return N_CLASSES if variant == "convex_only" else 2 * N_CLASSES


def is_residual(variant: str) -> bool:
    return variant != "plain_mlp"


def feature_size(conv: dict, image_size: int = 28) -> int:
    """n = filters * (pooled side)^2 for the conv + non-overlapping max-pool front end."""
    side = image_size + 2 * conv["padding"] - conv["size"] + 1
    if side < conv["pool"]:
        raise UserError(
            f"The convolution (size {conv['size']}, padding {conv['padding']}) leaves {side}x{side} "
            f"pixels, fewer than one max-pool window of {conv['pool']}; lower mnist.conv.pool or size."
        )
    return conv["filters"] * (side // conv["pool"]) ** 2


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda if PyTorch sees a GPU, else cpu; `cuda` without a GPU is a UserError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "Config key mnist.device is 'cuda' but PyTorch sees no CUDA GPU on this machine; "
            "set mnist.device to 'auto' or 'cpu', or run the job where a GPU is available."
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def configure_backend(device: torch.device, cfg: dict) -> None:
    """Numerics settings: float32 matmul precision from config; deterministic cuDNN choices."""
    torch.set_float32_matmul_precision(cfg["matmul_precision"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class ResidualPairs(nn.Module):
    """Conv + max-pool front end and `M` residual networks, batched over the network axis."""

    def __init__(self, cfg: dict, variant: str, generator: torch.Generator):
        super().__init__()
        if variant not in VARIANTS:
            raise UserError(f"Unknown MNIST variant '{variant}'; choose from {', '.join(VARIANTS)}.")
        conv, init = cfg["conv"], cfg["init"]
        self.variant, self.pool, self.padding = variant, conv["pool"], conv["padding"]
        self.n = n = feature_size(conv)
        self.m = m = n_networks(variant)
        self.depth = depth = cfg["depth"]
        self.residual = is_residual(variant)
        self.compute_dtype = compute_dtype(cfg["precision"])
        self._frozen: list[torch.Tensor] | None = None  # low-precision V during `frozen()`
        self._compiled = None  # `scores_from_features` under torch.compile, for training steps
        self._compile_log = None
        g = generator

        def uniform(shape, low, high):
            return torch.rand(shape, generator=g, dtype=torch.float32) * (high - low) + low

        fan_in = conv["size"] ** 2
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default Conv2d initialisation range
        self.conv_weight = nn.Parameter(
            uniform((conv["filters"], 1, conv["size"], conv["size"]), -bound, bound)
        )
        self.conv_bias = nn.Parameter(uniform((conv["filters"],), -bound, bound))
        # One leaf tensor per layer (never slices of one stacked parameter: backward is ~4x slower).
        vs, bs = [], []
        for _ in range(depth):
            if self.residual:  # non-negative, entries U(0, v_scale / n): row sums ~ v_scale / 2
                v = uniform((m, n, n), 0.0, init["v_scale"] / n)
            else:  # He initialisation for the plain ReLU network
                v = torch.randn((m, n, n), generator=g) * math.sqrt(2.0 / n)
            vs.append(nn.Parameter(v))
            bs.append(nn.Parameter(uniform((m, 1, n), init["bias_low"], init["bias_high"])))
        self.V = nn.ParameterList(vs)
        self.b = nn.ParameterList(bs)
        if self.residual:
            a = uniform((m, n), 0.0, 2.0 * init["out_scale"] / n)
        else:
            a = torch.randn((m, n), generator=g) * math.sqrt(1.0 / n)
        self.a = nn.Parameter(a)
        self.c = nn.Parameter(torch.zeros(N_CLASSES))

    # ------------------------------------------------------------------ forward ----------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, 28, 28] -> x [B, n]: convolution, max over non-overlapping windows, flatten."""
        h = F.conv2d(images, self.conv_weight, self.conv_bias, padding=self.padding)
        return F.max_pool2d(h, self.pool).flatten(1)

    def networks(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, n] -> z_L [M, B, n] for every network at once (row vectors: z + relu(z - b) V).

        In bfloat16, `z - b` is formed in float32 and rounded once; the ReLU, its mask in the
        backward pass and the matmul are bfloat16; the product is added to the float32 `z`
        (mixed-dtype add, computed in float32). bench/bench_mnist.py times the alternatives.
        """
        z = x.unsqueeze(0).expand(self.m, -1, -1)
        low = self.compute_dtype
        if low == torch.float32:
            for v, b in zip(self.V, self.b, strict=True):
                r = torch.relu(z - b)
                z = torch.baddbmm(z, r, v) if self.residual else torch.bmm(r, v)
            return z
        frozen = self._frozen if self._frozen is not None and not torch.is_grad_enabled() else None
        for i, b in enumerate(self.b):
            v = frozen[i] if frozen is not None else self.V[i].to(low)
            update = torch.bmm(torch.relu((z - b).to(low)), v)
            z = torch.add(z, update) if self.residual else update.float()
        return z

    @contextmanager
    def frozen(self):
        """Inference with fixed weights: in low precision, V is cast once for the whole block
        instead of once per batch (used without gradients only; the numbers are the same)."""
        if self.compute_dtype != torch.float32:
            self._frozen = [v.detach().to(self.compute_dtype) for v in self.V]
        try:
            yield self
        finally:
            self._frozen = None

    @contextmanager
    def precision(self, dtype: torch.dtype):
        """Evaluate in `dtype` inside the block (e.g. float32 for the Lipschitz measurements)."""
        before, self.compute_dtype = self.compute_dtype, dtype
        try:
            yield self
        finally:
            self.compute_dtype = before

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Network outputs y_m = a_m^T z_L^m as [B, M]."""
        return torch.einsum("mbn,mn->bm", self.networks(x), self.a)

    def scores_from_features(self, x: torch.Tensor) -> torch.Tensor:
        y = self.outputs(x)
        if self.m == 2 * N_CLASSES:
            y = y[:, :N_CLASSES] - y[:, N_CLASSES:]
        return y + self.c

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores s [B, 10]; with gradients and after `compile_training`, the networks
        run compiled."""
        x = self.features(images)
        if self._compiled is not None and torch.is_grad_enabled():
            return self._compiled_scores(x)
        return self.scores_from_features(x)

    def compile_training(self, log=None) -> None:
        """Run the networks of training steps under `torch.compile` (the inductor backend fuses
        the elementwise work of each residual layer with its casts; evaluation stays eager).
        Where compiling fails (no C++ compiler, an unsupported backend), the first training
        step says so in one line on `log` and the model goes on eagerly."""
        self._compiled = torch.compile(self.scores_from_features, dynamic=False)
        self._compile_log = log

    def _compiled_scores(self, x: torch.Tensor) -> torch.Tensor:
        if self._compile_log is None:  # compiled before: errors are real errors
            return self._compiled(x)
        log, self._compile_log = self._compile_log, None
        try:
            return self._compiled(x)
        except Exception as err:  # noqa: BLE001 (any compiler failure: fall back, say so)
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            print(f"torch.compile failed ({type(err).__name__}: {first}); training eagerly", file=log)
            self._compiled = None
            return self.scores_from_features(x)

    # ------------------------------------------------------------------ constraints ------
    @torch.no_grad()
    def project(self) -> None:
        """Projection onto the constraint set after each optimiser step: V_i >= 0, a >= 0."""
        if self.residual:
            for v in self.V:
                v.clamp_(min=0.0)
            self.a.clamp_(min=0.0)

    def flops_per_image(self) -> float:
        """Multiply-adds x 2 of the network layers (forward only; the conv is negligible)."""
        return 2.0 * self.m * self.depth * self.n * self.n


def reference_scores(model: ResidualPairs, images: torch.Tensor) -> torch.Tensor:
    """Plain per-network loop (column-vector form), for checking the batched forward."""
    x = model.features(images)
    outs = []
    for m in range(model.m):
        z = x.T  # [n, B]
        for v, b in zip(model.V, model.b, strict=True):
            r = torch.relu(z - b[m].T)
            z = z + v[m].T @ r if model.residual else v[m].T @ r
        outs.append(model.a[m] @ z)
    y = torch.stack(outs, dim=1)
    if model.m == 2 * N_CLASSES:
        y = y[:, :N_CLASSES] - y[:, N_CLASSES:]
    return y + model.c


# ---------------------------------------------------------------------- loss, evaluation --
def loss_fn(scores: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """`mse`: mean over batch and classes of (s_k - onehot_k)^2; `cross_entropy`: softmax CE."""
    if kind == "mse":
        return F.mse_loss(scores, F.one_hot(labels, N_CLASSES).to(scores.dtype))
    if kind == "cross_entropy":
        return F.cross_entropy(scores, labels)
    raise UserError(f"Unknown mnist.loss '{kind}'; choose mse or cross_entropy.")


@torch.no_grad()
def evaluate(model, images, labels, kind: str, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean loss) over a whole split, in batches, in the model's compute precision."""
    correct, total_loss = 0, 0.0
    with model.frozen():
        for start in range(0, images.shape[0], batch_size):
            x, y = images[start : start + batch_size], labels[start : start + batch_size]
            s = model(x)
            correct += int((s.argmax(1) == y).sum())
            total_loss += float(loss_fn(s, y, kind)) * x.shape[0]
    n = images.shape[0]
    return correct / n, total_loss / n


def lipschitz_estimate(model, images: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Input-gradient norms of the class scores at the given points: LOWER bounds, per class.

    For each point and class k, ||grad s_k||_2 with respect to the (normalised) image and to the
    pooled features x in R^n, in float32. Returns, per class (tensors of 10), the largest norm
    over the points (`features`, `input`: lower bounds on the Lipschitz constant of s_k) and the
    median over the points (`features_median`, `input_median`).
    """
    img_norms, feat_norms = [], []
    with model.precision(torch.float32):
        for start in range(0, images.shape[0], batch_size):
            img = images[start : start + batch_size].detach().clone().requires_grad_(True)
            x = model.features(img)
            s = model.scores_from_features(x)
            gi, gx = [], []
            for k in range(N_CLASSES):
                last = k == N_CLASSES - 1
                d_img, d_x = torch.autograd.grad(s[:, k].sum(), (img, x), retain_graph=not last)
                gi.append(d_img.flatten(1).norm(dim=1))
                gx.append(d_x.norm(dim=1))
            img_norms.append(torch.stack(gi, 1).detach())
            feat_norms.append(torch.stack(gx, 1).detach())
    gi, gx = torch.cat(img_norms).cpu().double(), torch.cat(feat_norms).cpu().double()
    return {
        "points": int(gi.shape[0]),
        "input": gi.max(0).values,
        "input_median": gi.median(0).values,
        "features": gx.max(0).values,
        "features_median": gx.median(0).values,
    }


@torch.no_grad()
def conv_norm_upper(weight: torch.Tensor, grid: int = 512) -> float:
    """An upper bound on the l2 operator norm of the convolution (any padding, 1 input channel).

    The zero-padded convolution is a restriction of the convolution on the infinite grid, whose
    norm is the largest Euclidean norm over frequencies w of the filters' transfer functions,
    sqrt(sum_f |W_f(w)|^2). It is evaluated on a `grid x grid` FFT grid; between grid points
    each |W_f| changes by at most e_f = (pi / grid) sum_pq |w_f[p, q]| (|p - c| + |q - c|)
    (c: the filter's centre), so max over the grid of sqrt(sum_f (|W_f| + e_f)^2) bounds it.
    Young's inequality gives the cruder sqrt(sum_f ||w_f||_1^2); the smaller of the two.
    """
    w = weight.detach().double().cpu()[:, 0]  # [F, k, k]
    k = w.shape[-1]
    mag = torch.fft.fft2(w, s=(grid, grid)).abs()  # [F, grid, grid]
    offs = (torch.arange(k, dtype=torch.float64) - (k - 1) / 2).abs()
    err = (math.pi / grid) * (w.abs() * (offs[:, None] + offs[None, :])).sum((1, 2))
    fourier = float((mag + err[:, None, None]).square().sum(0).sqrt().max())
    young = float(w.abs().sum((1, 2)).square().sum().sqrt())
    return min(fourier, young)


def conv_norm_power(model: ResidualPairs, iters: int = 100, seed_generator=None) -> float:
    """The convolution's l2 operator norm by power iteration on C^T C (a LOWER estimate)."""
    w = model.conv_weight.detach().double().cpu()
    g = seed_generator if seed_generator is not None else torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 28, 28, dtype=torch.float64, generator=g)
    sigma = 0.0
    for _ in range(iters):
        x = (x / x.norm()).requires_grad_(True)
        y = F.conv2d(x, w, padding=model.padding)
        (ctc,) = torch.autograd.grad(0.5 * y.square().sum(), x)  # C^T C x
        sigma = float(y.detach().norm())
        x = ctc.detach()
    return sigma


@torch.no_grad()
def lipschitz_upper(model: ResidualPairs) -> dict:
    """UPPER bounds on the l2 Lipschitz constant of each class score s_k (tensors of 10).

    Residual variants (V_i >= 0, a >= 0; docs/science.md section 5.4): the Jacobian of z_L
    with respect to x is entrywise between 0 and U = (I + V_L) ... (I + V_1) (column form), so
    the gradient of a network output y = a^T z_L lies entrywise in [0, U^T a]; the gradient
    of s_k = g_k - h_k lies in [-Q, P] (P, Q: the bounds of g_k and h_k), hence
    ||grad s_k||_2 <= ||max(P, Q)||_2 (convex_only: ||P||_2). plain_mlp: ReLU is 1-Lipschitz, so
    each network is bounded by the product of its layers' spectral norms times ||a||_2, and
    s_k by the sum of its two networks' bounds. With respect to the image: max-pooling over
    non-overlapping windows is 1-Lipschitz in l2, so the features' bound times an upper bound
    on the convolution's operator norm (`conv_norm_upper`).
    """
    vs = [v.detach().double().cpu() for v in model.V]
    a = model.a.detach().double().cpu()
    if model.residual:
        u = a.clone()  # [M, n]: U^T a = (I + V_1^T) ... (I + V_L^T) a, from the last layer back
        for v in reversed(vs):  # the stored V[i][m] is the paper's V_i^T
            u = u + torch.bmm(v, u.unsqueeze(-1)).squeeze(-1)
        if model.m == 2 * N_CLASSES:
            feats = torch.maximum(u[:N_CLASSES], u[N_CLASSES:]).norm(dim=1)
            method = "||max(U^T a_g, U^T a_h)||_2, U = (I + V_L)...(I + V_1), V_i, a >= 0"
        else:
            feats = u.norm(dim=1)
            method = "||U^T a||_2, U = (I + V_L)...(I + V_1), V_i, a >= 0"
    else:
        per_net = a.norm(dim=1)
        for v in vs:
            per_net = per_net * torch.linalg.matrix_norm(v, ord=2)
        feats = per_net[:N_CLASSES] + (per_net[N_CLASSES:] if model.m == 2 * N_CLASSES else 0.0)
        method = "sum over the pair of prod_i ||V_i||_2 ||a||_2"
    conv = conv_norm_upper(model.conv_weight)
    return {"features": feats, "input": conv * feats, "conv_norm": conv, "method": method}


def lipschitz_rows(model: ResidualPairs, images: torch.Tensor, batch_size: int) -> list[dict]:
    """One row per class: measured lower bounds, structural upper bounds and their ratios."""
    low = lipschitz_estimate(model, images, batch_size)
    up = lipschitz_upper(model)
    conv_low = conv_norm_power(model)
    rows = []
    for k in range(N_CLASSES):
        row = {"class": k, "points": low["points"]}
        for wrt in ("input", "features"):
            lo, hi = float(low[wrt][k]), float(up[wrt][k])
            row[f"lipschitz_{wrt}"] = lo
            row[f"lipschitz_{wrt}_median"] = float(low[f"{wrt}_median"][k])
            row[f"lipschitz_{wrt}_upper"] = hi
            row[f"lipschitz_{wrt}_ratio"] = hi / lo if lo > 0 else float("inf")
        row |= {"conv_norm_upper": up["conv_norm"], "conv_norm_power": conv_low, "upper_method": up["method"]}
        rows.append(row)
    return rows


@torch.no_grad()
def drift_rows(model: ResidualPairs, init: dict[str, torch.Tensor], epoch: int) -> list[dict]:
    """Bias and weight drift of every network and layer relative to the initial parameters.

    bias_drift = ||b - b0||_2, weight_drift = ||V - V0||_F (per network and layer), with the
    relative versions divided by ||b0||_2 and ||V0||_F, and the RMS change per entry.
    """
    rows = []
    n = model.n
    for i, (v, b) in enumerate(zip(model.V, model.b, strict=True)):
        dv = (v - init[f"V.{i}"]).flatten(1).norm(dim=1).cpu()
        db = (b - init[f"b.{i}"]).flatten(1).norm(dim=1).cpu()
        v0 = init[f"V.{i}"].flatten(1).norm(dim=1).cpu()
        b0 = init[f"b.{i}"].flatten(1).norm(dim=1).cpu()
        for m in range(model.m):
            rows.append(
                {
                    "epoch": epoch,
                    "network": m,
                    "class": m % N_CLASSES,
                    "role": "convex" if m < N_CLASSES else "concave",
                    "layer": i + 1,
                    "bias_drift": float(db[m]),
                    "weight_drift": float(dv[m]),
                    "bias_drift_rel": float(db[m] / b0[m]) if b0[m] > 0 else float("nan"),
                    "weight_drift_rel": float(dv[m] / v0[m]) if v0[m] > 0 else float("nan"),
                    "bias_drift_rms": float(db[m]) / math.sqrt(n),
                    "weight_drift_rms": float(dv[m]) / n,
                }
            )
    return rows


def init_state(model: ResidualPairs) -> dict[str, torch.Tensor]:
    return {
        **{f"V.{i}": v.detach().clone() for i, v in enumerate(model.V)},
        **{f"b.{i}": b.detach().clone() for i, b in enumerate(model.b)},
    }


# ---------------------------------------------------------------------- runs ---------------
def fingerprint(cfg: dict, variant: str, shapes) -> str:
    """Identity of a training run: the config entries that change its numbers, variant, data sizes."""
    keep = {k: v for k, v in cfg.items() if k not in AFTER_TRAINING_KEYS}
    blob = json.dumps({"cfg": keep, "variant": variant, "shapes": [list(s) for s in shapes]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Keys that only matter after training: a checkpoint made under other values stays valid.
AFTER_TRAINING_KEYS = frozenset({"lipschitz_points"})


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    cols = ["variant", "epoch", "train_acc", "test_acc", "train_loss", "test_loss", "seconds", "images_per_s"]
    df = pd.DataFrame(rows)
    df["gap"] = df["train_acc"] - df["test_acc"]
    return df[cols + [c for c in df.columns if c not in cols]]
