"""Reference implementation: one `torch.nn.Module` per run, trained with torch.optim.SGD(nesterov=True).

Slow on purpose (autograd and an optimizer per run); the tests check that the batched trainer
of `pipeline.bias1d.model` gives the same parameters, and bench/bench_bias1d.py times the two.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.bias1d.model import PairParams


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
