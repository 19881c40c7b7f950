"""Exact coordinate minimisation of the training loss over one bias of the convex residual pair.

The pair (docs/science.md sections 3-4, `model.py`):  z_0 = x,  z_i = z_{i-1} + w_i [z_{i-1} - b_i]_+,
fhat(x) = a_g z_L^g(x) - a_h z_L^h(x) + c,  training loss  (1/(2N)) sum_n (fhat(x_n) - y_n)^2.

`reference.candidate_kink_search` (the search the study used before) tries, for each bias, only
N + 2 candidates (one per gap between the layer's sorted inputs). Within a gap the loss still
varies with the bias, so that choice is not the 1-D minimiser. This module computes the exact
minimiser of the loss over one bias b = b_i of layer i of network k, every other parameter
fixed, for all runs of a batch at once:

* The layer's inputs u_n = z_{i-1}(x_n) do not depend on b. Its output is
  v_n(b) = u_n + w_i [u_n - b]_+: constant (= u_n) for b >= u_n, affine with slope -w_i below.
* The layers above, i+1..L, are one increasing, convex, piecewise-affine map phi of their scalar
  input, the same for every point. Layer j bends at the input t_j = phi_{i+1..j-1}^{-1}(b_j)
  (computed exactly by inverting the layers, each of which is an increasing affine map on
  either side of its bias); below every t the map is the identity, and on the segment above
  the sorted knot t_(m) its slope is prod_{j: t_j <= t_(m)} (1 + w_j).
* Hence e_n(b) = fhat(x_n) - y_n = sign_k a_k phi(v_n(b)) + (rest) is piecewise affine in b,
  with breakpoints only at b = u_n and at b = u_n - (t_j - u_n) / w_i for t_j > u_n (where
  v_n(b) crosses t_j): at most N (L - i + 1) breakpoints (layers numbered 1..L), and the loss is an
  exact quadratic in b between consecutive breakpoints.
* On every piece, at an interior point beta: e_n(beta) and its slope s_n = de_n/db are read
  off phi's knots; the loss is (1/(2N)) sum_n (e_n + s_n delta)^2 in delta = b - beta, minimised
  in closed form (delta = -sum e s / sum s^2), clipped to the piece. The best piece wins.

Nothing is sampled, so the result is the global minimiser over the search interval (up to
rounding). The interval is [min u - margin * span, max u + margin * span] (span = max u - min u,
or max(1, |u|) if all inputs are equal), widened to contain the current bias; below every input
the layer is active on every point (the loss is piecewise quadratic there too), above every
input the loss does not depend on b. It contains every candidate of `kink_candidates`, so the
exact choice is never worse than `candidate_kink_search`'s. The current bias is kept unless the
best value is lower than the current loss by more than rounding (64 ulp relative), and unless an
independent forward pass at the new bias confirms it, so the loss never increases.
"""

from __future__ import annotations

import math

import torch

from pipeline.bias1d.model import PairParams, _sign, forward

# A move must lower the loss by more than this many ulp (relative); ties keep the current bias.
_TIE_ULPS = 64.0


def _col(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`t` (`[R]`) reshaped to broadcast against `like` (`[R, ...]`)."""
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def _propagate(v: torch.Tensor, w: torch.Tensor, b: torch.Tensor, start: int) -> torch.Tensor:
    """Apply layers start..L-1 (0-based) of one network to `v` (`[R, ...]`); `w, b` are `[L, R]`."""
    for j in range(start, w.shape[0]):
        v = torch.addcmul(v, _col(w[j], v), torch.relu(v - _col(b[j], v)))
    return v


def search_interval(
    u: torch.Tensor, b: torch.Tensor, margin: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval searched for a layer with inputs `u` (`[R, N]`) and current bias `b` (`[R]`).

    `[min u - margin * span, max u + margin * span]` with span = max u - min u (max(1, |u|) when
    all inputs are equal), widened to contain `b`. Returns `(low, high)`, each `[R]`.
    """
    lo_u, hi_u = u.min(-1).values, u.max(-1).values
    span = hi_u - lo_u
    span = torch.where(span > 0, span, hi_u.abs().clamp(min=1.0))
    low = torch.minimum(lo_u - margin * span, b)
    high = torch.maximum(hi_u + margin * span, b)
    return low, high


def _layer_minimiser(
    u: torch.Tensor,
    rest: torch.Tensor,
    scale: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    i: int,
    margin: float,
):
    """Exact minimiser over b_i of one network, every run at once (the core of this module).

    `u`: the layer's inputs `[R, N]`; `rest`: everything in fhat - y but this network's term
    (`[R, N]`); `scale`: sign_k a_k (`[R]`); `w, b`: the network's weights and biases `[L, R]`;
    `i`: the layer (0-based). Returns `(new_b, loss_before, loss_after, moved)`, each `[R]`;
    losses are (1/(2N)) sum (fhat - y)^2, `loss_after` the piecewise-quadratic value at `new_b`.
    """
    runs = u.shape[0]
    dtype = u.dtype
    wi, bi = w[i], b[i]
    depth = w.shape[0]
    m = depth - 1 - i  # downstream layers

    # loss at the current bias (an ordinary forward pass)
    def loss_at(bias: torch.Tensor) -> torch.Tensor:
        v = torch.addcmul(u, wi[:, None], torch.relu(u - bias[:, None]))
        e = torch.addcmul(rest, scale[:, None], _propagate(v, w, b, i + 1))
        return 0.5 * (e * e).mean(-1)

    loss_before = loss_at(bi)

    # downstream knots: the input of layer i+1 at which layer j bends, t_j = phi_{i+1..j-1}^{-1}(b_j)
    knots = []
    for j in range(i + 1, depth):
        t = b[j].clone()
        for q in range(j - 1, i, -1):  # invert layer q: y <= b_q -> y, else b_q + (y - b_q) / (1 + w_q)
            t = torch.where(t <= b[q], t, b[q] + (t - b[q]) / (1 + w[q]))
        knots.append(t)
    t_raw = torch.stack(knots, -1) if m else u.new_zeros(runs, 0)  # [R, M]
    t_sorted = t_raw.sort(-1).values
    phi_knots = _propagate(t_sorted, w, b, i + 1)  # phi at the sorted knots [R, M]
    w_down = w[i + 1 :].T  # [R, M], in layer order (as t_raw)
    active = t_raw[:, None, :] <= t_sorted[:, :, None]  # [R, M (segment), M (layer)]
    slope_knots = (1 + w_down[:, None, :] * active).prod(-1)  # phi' just above each sorted knot
    # phi(v) = slope_m v + (phi(t_m) - slope_m t_m) on segment m (v above exactly m knots);
    # segment 0, below every knot, is the identity. Tables of e = scale phi(v) + rest, [R, M + 1]:
    slope_ext = torch.cat([u.new_ones(runs, 1), slope_knots], -1)
    offset_ext = torch.cat([u.new_zeros(runs, 1), phi_knots - slope_knots * t_sorted], -1)
    e_slope = scale[:, None] * slope_ext
    e_offset = scale[:, None] * offset_ext

    # breakpoints in b: u_n, and where v_n(b) = u_n + w_i (u_n - b) reaches a knot above u_n
    low, high = search_interval(u, bi, margin)
    w_safe = torch.where(wi > 0, wi, torch.ones_like(wi))
    t_above = t_raw[:, None, :] > u[:, :, None]  # [R, N, M]
    cross = u[:, :, None] - (t_raw[:, None, :] - u[:, :, None]) / w_safe[:, None, None]
    breaks = torch.cat([u, cross.masked_fill(~t_above, math.inf).reshape(runs, -1)], -1)
    inside = (breaks > low[:, None]) & (breaks < high[:, None])
    breaks = torch.where(inside, breaks, high[:, None]).sort(-1).values  # those outside: dropped
    breaks = breaks[:, : int(inside.sum(-1).max())]  # the columns where some run has a breakpoint
    edges = torch.cat([low[:, None], breaks, high[:, None]], -1)  # sorted, [R, P + 1]
    left, right = edges[:, :-1], edges[:, 1:]  # the pieces [R, P] (some may be empty, at high)
    beta = 0.5 * (left + right)  # a point inside each piece

    # e_n and de_n/db on every piece: [R, P, N]
    diff = u[:, None, :] - beta[:, :, None]
    v = torch.addcmul(u[:, None, :], wi[:, None, None], torch.relu(diff))
    if m:
        seg = torch.searchsorted(t_sorted.contiguous(), v.reshape(runs, -1))  # knots < v
    else:
        seg = torch.zeros(runs, v[0].numel(), dtype=torch.long, device=u.device)
    slope_v = e_slope.gather(1, seg).view_as(v)
    e = torch.addcmul(rest[:, None, :] + e_offset.gather(1, seg).view_as(v), slope_v, v)
    s = slope_v.mul_(diff > 0).mul_(-wi[:, None, None])  # de_n/db
    s1 = (e * s).sum(-1)
    s2 = (s * s).sum(-1)
    delta = torch.where(s2 > 0, -s1 / torch.where(s2 > 0, s2, torch.ones_like(s2)), torch.zeros_like(s1))
    delta = torch.minimum(torch.maximum(delta, left - beta), right - beta)
    piece_loss = 0.5 * torch.addcmul(e, s, delta[:, :, None]).square_().mean(-1)
    piece_loss = piece_loss.nan_to_num(nan=math.inf)
    best = piece_loss.argmin(-1, keepdim=True)
    q_best = piece_loss.gather(1, best)[:, 0]
    b_best = (beta + delta).gather(1, best)[:, 0]
    b_best = torch.minimum(torch.maximum(b_best, left.gather(1, best)[:, 0]), right.gather(1, best)[:, 0])

    # keep the current bias unless the exact minimum is lower beyond rounding (and a forward pass agrees)
    before = loss_before.nan_to_num(nan=math.inf)
    tol = torch.where(torch.isfinite(before), before * (_TIE_ULPS * torch.finfo(dtype).eps), 0.0)
    moved = (q_best < before - tol) & (wi > 0) & (scale != 0)
    moved &= loss_at(torch.where(moved, b_best, bi)).nan_to_num(nan=math.inf) <= before
    new_b = torch.where(moved, b_best, bi)
    loss_after = torch.where(moved, q_best, loss_before)
    return new_b, loss_before, loss_after, moved


def _prepare(p: PairParams, x: torch.Tensor, y: torch.Tensor):
    if x.dim() == 1:
        x = x.expand(p.runs, -1)
    return x.to(p.flat.dtype), y.to(p.flat.dtype).expand(p.runs, -1)


def exact_bias_minimiser(
    p: PairParams, x: torch.Tensor, y: torch.Tensor, layer: int, network: int, margin: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact minimiser of the training loss over one bias, b[layer, :, network], of every run.

    `x`: inputs `[R, N]` (or `[N]` shared); `y`: targets `[R, N]`; `layer`: 0-based; `network`:
    0 = g, 1 = h. Every other parameter is held at its value in `p` (not changed). The search
    interval is `search_interval(z_{layer}(x), b, margin)` (see the module docstring for why
    the piecewise-quadratic minimisation over it is exact). The current bias is returned where
    it is a minimiser (within rounding), where w = 0 or a_k = 0 (b has no effect).

    Returns `(new_b [R], loss_before [R], loss_after [R])`, the losses being the training loss
    (1/(2N)) sum_n (fhat(x_n) - y_n)^2 (half of `model.mse`) at the current and the new bias;
    `loss_after` is the value of the exact piecewise quadratic (a forward pass recomputes it).
    """
    x, y = _prepare(p, x, y)
    sign = _sign(p.flat.dtype)
    k = network
    _, z_out, _ = forward(p, x)
    rest = sign[1 - k] * p.a[:, 1 - k, None] * z_out[:, 1 - k] + p.c[:, None] - y
    w, b = p.w[:, :, k], p.b[:, :, k]
    u = _propagate(x, w[:layer], b[:layer], 0)
    new_b, before, after, _ = _layer_minimiser(u, rest, sign[k] * p.a[:, k], w, b, layer, margin)
    return new_b, before, after


def exact_kink_search(
    p: PairParams, x: torch.Tensor, y: torch.Tensor, margin: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of exact coordinate descent over the biases of every run; `p` is not changed.

    Same order and interface as `reference.candidate_kink_search` (layer by layer through g, then h, the
    biases already visited at their new values), but each bias moves to the exact minimiser
    of the loss over its search interval (`exact_bias_minimiser`) instead of the best of N + 2
    candidates. The current bias is kept where it is a minimiser, so the loss never increases.

    Returns the new biases `[L, R, 2]` and the mask of biases that moved (`[L, R, 2]`, bool).
    """
    x, y = _prepare(p, x, y)
    sign = _sign(p.flat.dtype)
    b = p.b.clone()
    moved = torch.zeros(b.shape, dtype=torch.bool)
    _, z_out, _ = forward(p, x)
    z_out = z_out.clone()
    for k in (0, 1):
        rest = sign[1 - k] * p.a[:, 1 - k, None] * z_out[:, 1 - k] + p.c[:, None] - y
        scale = sign[k] * p.a[:, k]
        w, bk = p.w[:, :, k], b[:, :, k]  # bk is a view of b: updated in place below
        z = x
        for i in range(p.depth):
            new, _, _, mv = _layer_minimiser(z, rest, scale, w, bk, i, margin)
            bk[i] = new
            moved[i, :, k] = mv
            z = torch.addcmul(z, w[i, :, None], torch.relu(z - new[:, None]))
        z_out[:, k] = z
    return b, moved
