"""References for the tests and benches: one `torch.nn.Module` per run, trained with
torch.optim.SGD(nesterov=True), and the candidate kink search.

`train_one_by_one` is slow on purpose (autograd and an optimizer per run); the tests check that
the batched trainer of `pipeline.bias1d.model` gives the same parameters, and
bench/bench_bias1d.py times the two. `candidate_kink_search` is the bias search the study used
before `exact_search.exact_kink_search`: each bias moves to the best of N + 2 candidates (one
per way of splitting the layer's inputs into those left and right of its kink), which is not
the minimiser over the bias; the tests use it as the weaker search the exact one must beat.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.bias1d.model import PairParams, _sign, forward


class PairNet(nn.Module):
    """fhat(x) = a_g g(x) - a_h h(x) + c, g and h univariate convex residual networks."""

    def __init__(self, w, b, a, c):
        super().__init__()
        # w, b: [L, 2] (column 0: g, column 1: h); a: [2]; c: scalar
        self.w_g = nn.Parameter(w[:, 0].clone())
        self.w_h = nn.Parameter(w[:, 1].clone())
        self.b_g = nn.Parameter(b[:, 0].clone())
        self.b_h = nn.Parameter(b[:, 1].clone())
        self.a = nn.Parameter(a.clone())
        self.c = nn.Parameter(c.clone().reshape(()))

    @staticmethod
    def network(x, w, b):
        z = x
        for i in range(w.shape[0]):
            z = z + w[i] * torch.relu(z - b[i])
        return z

    def forward(self, x):
        return (
            self.a[0] * self.network(x, self.w_g, self.b_g)
            - self.a[1] * self.network(x, self.w_h, self.b_h)
            + self.c
        )

    def project(self):
        with torch.no_grad():
            for t in (self.w_g, self.w_h, self.a):
                t.clamp_(min=0.0)

    def params(self):
        w = torch.stack([self.w_g, self.w_h], -1).detach()
        b = torch.stack([self.b_g, self.b_h], -1).detach()
        return w, b, self.a.detach(), self.c.detach()


def train_one_by_one(p: PairParams, x, y, lr: float, momentum: float, iterations: int) -> PairParams:
    """Train each run of `p` on its own (`x`, `y`: `[R, N]`); returns the final parameters."""
    finals = []
    for r in range(p.runs):
        net = PairNet(p.w[:, r], p.b[:, r], p.a[r], p.c[r])
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=True)
        for _ in range(iterations):
            opt.zero_grad()
            loss = 0.5 * ((net(x[r]) - y[r]) ** 2).mean()
            loss.backward()
            opt.step()
            net.project()
        finals.append(net.params())
    w, b, a, c = (torch.stack([f[k] for f in finals], dim=1 if k < 2 else 0) for k in range(4))
    return PairParams.from_tensors(w, b, a, c)


def kink_candidates(u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Candidate biases of one layer: `[R, N + 2]` from its inputs `u` (`[R, N]`) and biases `b` (`[R]`).

    Column 0 is the current bias; then half a gap below the smallest input (the layer active
    on every point), the midpoints between consecutive sorted inputs, and half a gap above the
    largest (inactive on every point): one candidate per way of splitting the points into
    those left and right of the kink.
    """
    us = u.sort(-1).values
    gaps = us[:, 1:] - us[:, :-1]
    return torch.cat(
        [
            b[:, None],
            us[:, :1] - gaps[:, :1] / 2,
            us[:, :-1] + gaps / 2,
            us[:, -1:] + gaps[:, -1:] / 2,
        ],
        -1,
    )


def candidate_kink_search(
    p: PairParams, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of coordinate descent over the biases of every run, each bias moved to the
    best of its `kink_candidates` (not to the exact minimiser); `p` is not changed.

    Layer by layer through g (i = 1..L), then through h, with every other parameter fixed
    (the biases already visited at their new values): the layer's inputs `u_n = z_{i-1}(x_n)`
    do not depend on `b_i`; each candidate of `kink_candidates` is evaluated by the exact
    training loss (a forward pass of layers i..L of that network for every point, the other
    network's output held fixed), all runs and candidates of a layer as one `[R, C, N]` tensor,
    and the bias moves to the best one. The current bias is a candidate and wins ties, so the
    loss never increases (in exact arithmetic). A non-finite loss counts as +inf.

    Returns the new biases `[L, R, 2]` and a mask of the biases that moved (`[L, R, 2]`, bool).
    """
    if x.dim() == 1:
        x = x.expand(p.runs, -1)
    x = x.to(p.flat.dtype)
    y = y.to(p.flat.dtype)
    sign = _sign(p.flat.dtype)
    b = p.b.clone()
    moved = torch.zeros(b.shape, dtype=torch.bool)
    _, z_out, _ = forward(p, x)  # [R, 2, N] outputs of g and h at the current parameters
    z_out = z_out.clone()
    for k in (0, 1):
        other = sign[1 - k] * p.a[:, 1 - k, None] * z_out[:, 1 - k] + p.c[:, None]  # [R, N]
        resid = (other - y)[:, None, :]  # [R, 1, N]
        scale = (sign[k] * p.a[:, k])[:, None, None]
        w = p.w[:, :, k]  # [L, R]
        z = x
        for i in range(p.depth):
            cand = kink_candidates(z, b[i, :, k])  # [R, C]
            u = z[:, None, :]  # the layer's inputs [R, 1, N], the same for every candidate
            zc = torch.addcmul(u, w[i, :, None, None], torch.relu(u - cand[:, :, None]))
            for j in range(i + 1, p.depth):
                zc = torch.addcmul(zc, w[j, :, None, None], torch.relu(zc - b[j, :, k, None, None]))
            err = torch.addcmul(resid, scale, zc)
            loss = (err * err).mean(-1).nan_to_num_(nan=math.inf)  # [R, C]
            best = loss.argmin(-1)  # the first of equal minima: the current bias on ties
            new = cand.gather(-1, best[:, None])[:, 0]
            moved[i, :, k] = best != 0
            b[i, :, k] = torch.where(best != 0, new, b[i, :, k])
            z = torch.addcmul(z, w[i, :, None], torch.relu(z - b[i, :, k, None]))
        z_out[:, k] = z
    return b, moved
