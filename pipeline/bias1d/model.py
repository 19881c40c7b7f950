"""Univariate convex residual networks, the convex-concave pair, and their batched training.

docs/science.md sections 3-4. One network of depth L on a scalar input x:

    z_0 = x,   z_i = z_{i-1} + w_i [z_{i-1} - b_i]_+   (i = 1..L),   w_i >= 0,

and the pair  fhat(x) = a_g z_L^g(x) - a_h z_L^h(x) + c  with a_g, a_h >= 0.

Many runs (seeds x bias-init intervals x targets) are trained at once as one tensor program.
All parameters live in one flat float buffer; the named tensors are views of it, laid out
layer-major so that each layer's parameters are one contiguous `[runs, 2]` block
(index 0 of the last axis is g, index 1 is h):

    w, b: [L, runs, 2]     a: [runs, 2]     c: [runs]

Gradients are written by hand (checked against autograd in float64 by the tests) into a
flat buffer of the same layout, so one full-batch Nesterov step is a handful of vector ops.

Non-gradient bias update (docs/science.md section 6.2): `train_nesterov` interleaves the
gradient steps of some runs with rounds of a bias search (the study's is
`exact_search.exact_kink_search`, exact coordinate descent over the biases). It also detects
optimisation collapses: a loss spike in which the projection sets an output scale to 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# fhat = sum_k SIGN_k a_k z_L^k + c: g enters with +, h with -.
_SIGN = (1.0, -1.0)


@dataclass
class PairParams:
    """Parameters of `runs` pair networks of depth `L`, as views of one flat buffer `flat`."""

    flat: torch.Tensor
    w: torch.Tensor  # [L, R, 2], >= 0
    b: torch.Tensor  # [L, R, 2]
    a: torch.Tensor  # [R, 2], >= 0 (a_g, a_h)
    c: torch.Tensor  # [R]

    @property
    def depth(self) -> int:
        return self.w.shape[0]

    @property
    def runs(self) -> int:
        return self.w.shape[1]

    @classmethod
    def empty(cls, depth: int, runs: int, dtype=torch.float64) -> PairParams:
        n_layer = depth * runs * 2
        flat = torch.zeros(2 * n_layer + 2 * runs + runs, dtype=dtype)
        return cls(flat, *_views(flat, depth, runs))

    @classmethod
    def from_tensors(cls, w, b, a, c) -> PairParams:
        w, b, a, c = (torch.as_tensor(t) for t in (w, b, a, c))
        p = cls.empty(w.shape[0], w.shape[1], dtype=w.dtype)
        p.w.copy_(w)
        p.b.copy_(b)
        p.a.copy_(a)
        p.c.copy_(c)
        return p

    def like(self) -> PairParams:
        """A zero buffer with the same layout (for gradients, momentum)."""
        return PairParams.empty(self.depth, self.runs, dtype=self.flat.dtype)

    def clone(self) -> PairParams:
        p = self.like()
        p.flat.copy_(self.flat)
        return p

    def select(self, runs) -> PairParams:
        """The sub-batch of the given run indices (a copy)."""
        idx = torch.as_tensor(runs, dtype=torch.long)
        return PairParams.from_tensors(self.w[:, idx], self.b[:, idx], self.a[idx], self.c[idx])

    def numpy(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).detach().cpu().numpy().copy() for k in ("w", "b", "a", "c")}

    def project(self) -> None:
        """Projection onto the constraint set: w >= 0 and a >= 0 (clamp in place)."""
        self.w.clamp_(min=0.0)
        self.a.clamp_(min=0.0)


def _views(flat: torch.Tensor, depth: int, runs: int):
    n_layer = depth * runs * 2
    w = flat[:n_layer].view(depth, runs, 2)
    b = flat[n_layer : 2 * n_layer].view(depth, runs, 2)
    a = flat[2 * n_layer : 2 * n_layer + 2 * runs].view(runs, 2)
    c = flat[2 * n_layer + 2 * runs :]
    return w, b, a, c


def _sign(dtype) -> torch.Tensor:
    return torch.tensor(_SIGN, dtype=dtype)


# ---------------------------------------------------------------- forward and gradients ---------------


def forward(p: PairParams, x: torch.Tensor, keep: bool = False):
    """Evaluate every run's pair on its inputs `x` (`[R, N]`, or `[N]` shared by all runs).

    Returns `(fhat [R, N], z_L [R, 2, N], acts)` where `acts[i] = [z_{i-1} - b_i]_+` (`[R, 2, N]`)
    when `keep` (needed by `gradients`), else an empty list.
    """
    if x.dim() == 1:
        x = x.expand(p.runs, -1)
    z = x.unsqueeze(1).expand(-1, 2, -1)
    acts = []
    for i in range(p.depth):
        r = torch.relu(z - p.b[i].unsqueeze(-1))
        z = torch.addcmul(z, p.w[i].unsqueeze(-1), r)
        if keep:
            acts.append(r)
    f = torch.einsum("rkn,rk->rn", z, p.a * _sign(p.a.dtype)) + p.c.unsqueeze(-1)
    return f, z, acts


def mse(p: PairParams, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per run, `[R]`."""
    f, _, _ = forward(p, x)
    return ((f - y) ** 2).mean(-1)


def gradients(p: PairParams, x: torch.Tensor, y: torch.Tensor, out: PairParams, work=None) -> torch.Tensor:
    """Gradient of the loss `(1/(2N)) sum_n (fhat(x_n) - y_n)^2` of every run, written into `out`.

    Hand-written backward pass through the layers (ReLU derivative 0 at 0, as autograd's).
    `work` is an optional `Workspace` for `p` reused across calls. Returns the per-run MSE
    `[R]` of the current parameters (twice the loss).
    """
    if x.dim() == 1:
        x = x.expand(p.runs, -1)
    n = y.shape[-1]
    ws = work if work is not None else Workspace(p, n)
    acts, masks, grads = ws.acts, ws.masks, ws.grads  # [L, R, 2, N] each
    # forward, keeping [z_{i-1} - b_i]_+ for every layer
    z = x.unsqueeze(1).expand(-1, 2, -1)
    for i in range(p.depth):
        torch.sub(z, ws.b[i], out=acts[i])
        torch.relu_(acts[i])
        z = torch.addcmul(z, ws.w[i], acts[i])
    signed_a = (p.a * ws.sign).unsqueeze(1)  # [R, 1, 2]
    err = torch.bmm(signed_a, z).squeeze(1).add_(ws.c).sub_(y)
    mse_now = (err * err).mean(-1)
    e = err.div_(n).unsqueeze(1)  # d loss / d fhat, [R, 1, N]
    out.c.copy_(e.sum((1, 2)))
    torch.mul(torch.bmm(z, e.transpose(1, 2)).squeeze(-1), ws.sign, out=out.a)
    # backward: grads[i] = d loss / d z_i, the signal arriving at layer i's output
    torch.gt(acts, 0, out=masks)
    dz = signed_a.transpose(1, 2) * e  # d loss / d z_L, [R, 2, N]
    for i in range(p.depth - 1, -1, -1):
        grads[i] = dz
        dz = torch.addcmul(dz, ws.w[i], dz * masks[i])
    # d loss / d w_i = sum_n dz_i [.]_+ ;  d loss / d b_i = -w_i sum_n dz_i 1[. > 0]
    torch.sum(grads.mul_(masks), -1, out=out.b)
    out.b.mul_(p.w).neg_()
    torch.sum(grads.mul_(acts), -1, out=out.w)  # masks * acts = acts
    return mse_now


class Workspace:
    """Buffers reused by `gradients` across iterations, and per-layer views of `p`."""

    def __init__(self, p: PairParams, n: int):
        shape = (p.depth, p.runs, 2, n)
        self.acts = torch.empty(shape, dtype=p.flat.dtype)
        self.masks = torch.empty(shape, dtype=p.flat.dtype)
        self.grads = torch.empty(shape, dtype=p.flat.dtype)
        # views of p (they follow in-place updates of p.flat)
        self.w = [p.w[i].unsqueeze(-1) for i in range(p.depth)]
        self.b = [p.b[i].unsqueeze(-1) for i in range(p.depth)]
        self.c = p.c.unsqueeze(-1)
        self.sign = _sign(p.flat.dtype)


def autograd_gradients(p: PairParams, x: torch.Tensor, y: torch.Tensor) -> PairParams:
    """Reference gradient by torch.autograd (slow; for tests)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (p.w, p.b, p.a, p.c)]
    w, b, a, c = leaves
    if x.dim() == 1:
        x = x.expand(p.runs, -1)
    z = x.unsqueeze(1).expand(-1, 2, -1)
    for i in range(p.depth):
        z = z + w[i].unsqueeze(-1) * torch.relu(z - b[i].unsqueeze(-1))
    f = (z * (a * _sign(a.dtype)).unsqueeze(-1)).sum(1) + c.unsqueeze(-1)
    loss = 0.5 * ((f - y) ** 2).mean(-1).sum()
    loss.backward()
    return PairParams.from_tensors(*(t.grad for t in leaves))


# ---------------------------------------------------------------- training ------------------------------


def train_nesterov(
    p: PairParams,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    momentum: float | torch.Tensor,
    iterations: int,
    record_steps=(),
    snapshot_steps=(),
    search_every: int = 0,
    search_runs=None,
    search_fn: Callable | None = None,
    fit_mse: torch.Tensor | None = None,
    collapse_spike: float = math.inf,
    stats: dict | None = None,
) -> tuple[PairParams, dict[int, np.ndarray], dict[int, dict[str, np.ndarray]]]:
    """Full-batch Nesterov accelerated gradient with projection, on every run at once.

    The update is torch.optim.SGD(nesterov=True)'s (dampening 0):
        g = grad(theta);  v <- momentum v + g;  theta <- theta - lr (g + momentum v),
    followed by the projection w >= 0, a >= 0 (clamp). `momentum` is one number or one per
    run (`[R]`). Trains `p` in place and returns it with `{step: mse [R]}` for each step in
    `record_steps` (the MSE after that many updates) and `{step: parameters}` (as
    `PairParams.numpy()`) for each step in `snapshot_steps`.

    Non-gradient bias updates: with `search_every = k > 0`, the runs of `search_runs` (indices)
    get one round of `search_fn(params, x, y) -> (new biases [L, R, 2], moved mask)` (e.g.
    `exact_search.exact_kink_search`) after every k-th gradient step (after k, 2k, ... steps,
    also after the last one), so the state after t steps has had floor(t / k) searches. The
    momentum of every bias the search moves is set to zero; the others keep theirs.

    Collapses: `collapse_step` is the first step t in which the MSE before the update is at
    least `collapse_spike` times the lowest MSE of the steps before (a loss spike) and the
    projection after the update sets an output scale a_g or a_h to 0 (it was negative).

    `stats`, if given, is filled with: `steps_to_fit` (`[R]` float64, the first t at which the
    MSE after t steps is at most `fit_mse` (`[R]`), +inf if never; only with `fit_mse`),
    `collapse_step` (`[R]` float64, +inf if never), `loss_spike` (`[R]`, the largest ratio of
    an MSE to the lowest one before it), `kink_moves` (`[R]`, biases moved by searches),
    `searches` (rounds done), and the wall seconds of the gradient steps (`grad_seconds`: the
    whole batch, projection, fit and collapse checks included) and of the searches
    (`search_seconds`: the search runs' sub-batch), measured separately; recording and
    snapshots are in neither.
    """
    x = x.to(p.flat.dtype)
    y = y.to(p.flat.dtype)
    if x.dim() == 1:
        x = x.expand(p.runs, -1)
    grad = p.like()
    vel = p.like()
    if isinstance(momentum, torch.Tensor):  # one value per run, laid out like the parameters
        m = p.like()
        per_run = momentum.to(p.flat.dtype)
        m.w.copy_(per_run[None, :, None].expand_as(m.w))
        m.b.copy_(per_run[None, :, None].expand_as(m.b))
        m.a.copy_(per_run[:, None].expand_as(m.a))
        m.c.copy_(per_run)
        momentum = m.flat
    work = Workspace(p, y.shape[-1])
    record, snap = set(record_steps), set(snapshot_steps)
    curves: dict[int, np.ndarray] = {}
    snapshots: dict[int, dict[str, np.ndarray]] = {}
    idx = torch.as_tensor(np.asarray([] if search_runs is None else search_runs), dtype=torch.long)
    searching = search_every > 0 and len(idx) > 0
    if searching and search_fn is None:
        raise ValueError("search_every > 0 with search runs needs a search_fn")
    moves = torch.zeros(p.runs, dtype=torch.long)
    first_fit = torch.full((p.runs,), math.inf, dtype=torch.float64)
    first_collapse = torch.full((p.runs,), math.inf, dtype=torch.float64)
    lowest = torch.full((p.runs,), math.inf, dtype=p.flat.dtype)
    spike = torch.zeros(p.runs, dtype=p.flat.dtype)
    peak = torch.zeros(p.runs, dtype=p.flat.dtype)
    clock = {"search": 0.0, "other": 0.0, "searches": 0}

    def search():
        t0 = time.perf_counter()
        b, moved = search_fn(p.select(idx), x[idx], y[idx])
        p.b[:, idx] = b
        vel.b[:, idx] = vel.b[:, idx].masked_fill(moved, 0.0)
        moves.index_add_(0, idx, moved.sum((0, 2)))
        clock["search"] += time.perf_counter() - t0
        clock["searches"] += 1

    def check_fit(m_now, step):
        if fit_mse is not None:
            first_fit.masked_fill_((m_now <= fit_mse) & (first_fit > step), step)

    def check_spike(m_now):
        torch.div(m_now, lowest, out=spike)  # 0 at the first step (lowest = inf)
        torch.maximum(peak, spike, out=peak)
        torch.minimum(lowest, m_now, out=lowest)

    def check_collapse(step):  # after the update, before the projection
        if not math.isfinite(collapse_spike):
            return
        hit = (p.a < 0).any(-1) & (spike >= collapse_spike) & (first_collapse > step)
        first_collapse.masked_fill_(hit, step)

    def keep(step, m_now):
        t0 = time.perf_counter()
        if step in record:
            curves[step] = m_now.numpy().copy()
        if step in snap:
            snapshots[step] = p.numpy()
        clock["other"] += time.perf_counter() - t0

    start = time.perf_counter()
    for step in range(iterations):
        if searching and step and step % search_every == 0:
            search()
        m_now = gradients(p, x, y, grad, work)
        check_fit(m_now, step)
        check_spike(m_now)
        keep(step, m_now)
        if isinstance(momentum, torch.Tensor):
            vel.flat.mul_(momentum).add_(grad.flat)
            p.flat.sub_(grad.flat.addcmul_(vel.flat, momentum), alpha=lr)
        else:
            vel.flat.mul_(momentum).add_(grad.flat)
            p.flat.add_(grad.flat.add_(vel.flat, alpha=momentum), alpha=-lr)  # same rounding as SGD's
        check_collapse(step)
        p.project()
    if searching and iterations and iterations % search_every == 0:
        search()
    elapsed = time.perf_counter() - start
    m_end = mse(p, x, y)
    check_fit(m_end, iterations)
    if iterations in record:
        curves[iterations] = m_end.numpy().copy()
    if iterations in snap:
        snapshots[iterations] = p.numpy()
    if stats is not None:
        stats.update(
            steps_to_fit=first_fit.numpy().copy(),
            collapse_step=first_collapse.numpy().copy(),
            loss_spike=peak.numpy().copy(),
            kink_moves=moves.numpy().copy(),
            searches=clock["searches"],
            search_seconds=clock["search"],
            grad_seconds=elapsed - clock["search"] - clock["other"],
        )
    return p, curves, snapshots


# ---------------------------------------------------------------- exact analysis (numpy, float64) -----


def network_values(w: np.ndarray, b: np.ndarray, x: np.ndarray, upto: int | None = None) -> np.ndarray:
    """z_upto(x) of single networks: `w, b` `[..., L]`, `x` `[..., P]` (broadcast) -> `[..., P]`."""
    z = np.asarray(x, dtype=np.float64)
    upto = w.shape[-1] if upto is None else upto
    for i in range(upto):
        z = z + w[..., i, None] * np.maximum(z - b[..., i, None], 0.0)
    return z


def kink_locations(w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact x-location of every layer's kink, `w, b` `[..., L]` -> `[..., L]`.

    Layer i bends where z_{i-1}(x) = b_i. Since w >= 0, z_{i-1} is continuous, piecewise
    linear and strictly increasing (slope >= 1), with kinks only at the earlier layers' kink
    locations, so the equation has exactly one root, found by linear interpolation between
    consecutive known points. Anchors: left of min(b) every layer is off (z = x), and every
    kink lies at x <= b_i (because z_{i-1}(x) >= x), so [min(b) - 1, max(b) + 1] brackets all.
    """
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    depth = w.shape[-1]
    left = b.min(axis=-1, keepdims=True) - 1.0
    right = b.max(axis=-1, keepdims=True) + 1.0
    kinks = np.empty_like(b)
    for i in range(depth):
        pts = np.sort(np.concatenate([left, right, kinks[..., :i]], axis=-1), axis=-1)
        vals = network_values(w[..., :i], b[..., :i], pts)
        target = b[..., i, None]
        # segment k with vals[k] < b_i <= vals[k+1] (vals strictly increasing in pts)
        k = np.clip((vals < target).sum(axis=-1, keepdims=True) - 1, 0, pts.shape[-1] - 2)
        p0, p1 = np.take_along_axis(pts, k, -1), np.take_along_axis(pts, k + 1, -1)
        v0, v1 = np.take_along_axis(vals, k, -1), np.take_along_axis(vals, k + 1, -1)
        kinks[..., i] = (p0 + (target - v0) * (p1 - p0) / (v1 - v0))[..., 0]
    return kinks


def pair_values(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """fhat of every run (params from `PairParams.numpy()`) on points `x` (`[P]` or `[R, P]`)."""
    w = np.moveaxis(params["w"], 0, -1)  # [R, 2, L]
    b = np.moveaxis(params["b"], 0, -1)
    x = np.asarray(x, dtype=np.float64)
    xx = x[:, None, :] if x.ndim == 2 else x[None, None, :]
    z = network_values(w, b, xx)  # [R, 2, P]
    a = params["a"]
    return a[:, 0, None] * z[:, 0] - a[:, 1, None] * z[:, 1] + params["c"][:, None]


def pair_breakpoints(params: dict[str, np.ndarray]) -> np.ndarray:
    """All kink x-locations of each run's pair, `[R, 2L]` (g's then h's; unsorted)."""
    w = np.moveaxis(params["w"], 0, -1)
    b = np.moveaxis(params["b"], 0, -1)
    return kink_locations(w, b).reshape(w.shape[0], -1)


def exact_lipschitz(params: dict[str, np.ndarray], low: float, high: float) -> np.ndarray:
    """Exact Lipschitz constant of each run's fhat on [low, high], `[R]`.

    fhat is piecewise linear with kinks only at the pair's breakpoints; evaluating it at
    low, high and every breakpoint inside, the largest |slope| between consecutive points is
    the Lipschitz constant on the interval (up to rounding).
    """
    bps = pair_breakpoints(params)
    pts = np.clip(bps, low, high)
    runs = pts.shape[0]
    pts = np.sort(np.concatenate([np.full((runs, 1), low), pts, np.full((runs, 1), high)], -1), -1)
    vals = pair_values(params, pts)
    dx = np.diff(pts, axis=-1)
    dv = np.diff(vals, axis=-1)
    keep = dx > 1e-12 * max(1.0, high - low)
    slopes = np.where(keep, np.abs(dv) / np.where(keep, dx, 1.0), 0.0)
    return slopes.max(axis=-1)


# ---------------------------------------------------------------- exact representation ----------------


def represent_piecewise(knots_x, knots_y, depth: int) -> dict[str, np.ndarray]:
    """Pair parameters (one run) that equal the piecewise-affine interpolant of the knots on R.

    The interpolant is extended linearly beyond the end knots. Each interior knot with a
    slope increase gets one layer of g, each with a decrease one layer of h, in increasing x
    order; its bias is z_{i-1}(knot), i.e. the layer bends exactly at the knot, and its weight
    multiplies the network's slope so that a_g (or a_h) times the slope jump equals the
    target's. Unused layers get w = 0. Raises ValueError if `depth` is too small.
    """
    kx = np.asarray(knots_x, dtype=np.float64)
    ky = np.asarray(knots_y, dtype=np.float64)
    slopes = np.diff(ky) / np.diff(kx)
    jumps = np.diff(slopes)  # at interior knots kx[1:-1]
    ups = [(t, d) for t, d in zip(kx[1:-1], jumps, strict=True) if d > 0]
    downs = [(t, -d) for t, d in zip(kx[1:-1], jumps, strict=True) if d < 0]
    if max(len(ups), len(downs)) > depth:
        raise ValueError(f"depth {depth} is too small for {max(len(ups), len(downs))} kinks of one sign")
    a_g = max(slopes[0], 0.0) + 1.0
    a_h = a_g - slopes[0]  # leftmost slope a_g - a_h = slopes[0]; both networks have slope 1 there
    w = np.zeros((2, depth))
    b = np.zeros((2, depth))  # unused layers (w = 0) bend nothing, wherever b is
    for k, (scale, kinks) in enumerate(((a_g, ups), (a_h, downs))):
        slope = 1.0
        for i, (t, d) in enumerate(kinks):
            b[k, i] = network_values(w[k, :i], b[k, :i], np.array([t]))[0]
            new = slope + d / scale
            w[k, i] = new / slope - 1.0
            slope = new
    params = {"w": w.T[:, None, :], "b": b.T[:, None, :], "a": np.array([[a_g, a_h]]), "c": np.zeros(1)}
    params["c"] = np.array([ky[0] - pair_values(params, kx[:1])[0, 0]])
    return params


def piecewise_values(knots_x, knots_y, x) -> np.ndarray:
    """The piecewise-affine interpolant of the knots at x, extended linearly beyond the ends."""
    kx = np.asarray(knots_x, dtype=np.float64)
    ky = np.asarray(knots_y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, kx, ky)
    s0 = (ky[1] - ky[0]) / (kx[1] - kx[0])
    s1 = (ky[-1] - ky[-2]) / (kx[-1] - kx[-2])
    y = np.where(x < kx[0], ky[0] + s0 * (x - kx[0]), y)
    return np.where(x > kx[-1], ky[-1] + s1 * (x - kx[-1]), y)


def brute_lipschitz(params: dict[str, np.ndarray], low: float, high: float, points: int) -> np.ndarray:
    """max |finite difference| of fhat on a uniform grid of `points` (a lower bound; for tests)."""
    x = np.linspace(low, high, points)
    v = pair_values(params, x)
    return np.abs(np.diff(v, axis=-1)).max(-1) / (x[1] - x[0])
