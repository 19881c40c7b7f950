"""Deep linear networks on stacked weights: products, loss, gradients, Hessian-vector products.

A batch of B runs; a chain is a list [W_1, ..., W_L] of tensors [B, n, n] (one leaf tensor per
layer), a network is one or more chains with signs (`Rhat = sum_c sign_c W^c_L ... W^c_1`).
Every run has its own target `R` [B, n, n] and data covariance `Sigma = X X^T / N` [B, n, n]
(None: whitened data, `Sigma = I`). The loss of a run is `l = 1/2 tr((R - Rhat) Sigma
(R - Rhat)^T)`; with `G = (R - Rhat) Sigma` its gradient is
`dl/dW_j = -sign (W_L...W_{j+1})^T G (W_{j-1}...W_1)^T`; gradients and Hessian-vector products
use autograd on `loss` (the fixed-step engine, `descent.py`, writes its gradients out by hand).
"""

from __future__ import annotations

import torch


def mm(a, b):
    """a @ b, batched (elementwise for 1x1 matrices)."""
    return a * b if a.shape[-1] == 1 else torch.bmm(a, b)


def mm_tn(a, b):
    """a^T @ b, batched."""
    return a * b if a.shape[-1] == 1 else torch.bmm(a.mT, b)


def chain_product(ws):
    """W_L ... W_1 for a chain given as [W_1, ..., W_L], each [B, n, n]."""
    p = ws[0]
    for w in ws[1:]:
        p = mm(w, p)
    return p


def network_output(chains, signs):
    """Rhat = sum_c sign_c W^c_L ... W^c_1, [B, n, n]."""
    out = None
    for ws, sign in zip(chains, signs, strict=True):
        p = chain_product(ws)
        out = sign * p if out is None else out + sign * p
    return out


def loss(R, chains, signs, sigma=None):
    """Per-run loss [B]: 1/2 tr(E Sigma E^T), E = R - Rhat (differentiable; used by autograd)."""
    E = R - network_output(chains, signs)
    ES = E if sigma is None else mm(E, sigma)
    return 0.5 * (ES * E).sum(dim=(-2, -1))


def loss_and_gradients(R, chains, signs, sigma=None):
    """Per-run loss [B] and the gradients dl/dW of every layer of every chain (lists like
    `chains`), by autograd on `loss`. (A hand-written batched version, three matmuls per layer,
    was 1.08-1.14x autograd at n = 10, L = 4 (bench/bench_stepsize.py), short of the 1.5x a
    hand-written kernel must earn, and gave the same numbers.)"""
    params = [[w.detach().requires_grad_(True) for w in ws] for ws in chains]
    with torch.enable_grad():
        per_run = loss(R, params, signs, sigma)
        flat = torch.autograd.grad(per_run.sum(), [w for ws in params for w in ws])
    grads, k = [], 0
    for ws in chains:
        grads.append(list(flat[k : k + len(ws)]))
        k += len(ws)
    return per_run.detach(), grads


def hessian_vector_product(R, chains, signs, sigma=None):
    """(hvp, D): `hvp(v)` maps v [B, D] to H v [B, D], H the Hessian of each run's loss
    (`loss`) at `chains`, all layers of all chains flattened in order; by
    autograd double-backward (the Hessian of the summed loss is block-diagonal over runs)."""
    params = [w.detach().clone().requires_grad_(True) for ws in chains for w in ws]
    nested, k = [], 0
    for ws in chains:
        nested.append(params[k : k + len(ws)])
        k += len(ws)
    B, n = R.shape[0], R.shape[-1]
    with torch.enable_grad():
        grads = torch.autograd.grad(loss(R, nested, signs, sigma).sum(), params, create_graph=True)

    def hvp(v):
        vs = [c.reshape(B, n, n).to(R.dtype) for c in v.split(n * n, dim=1)]
        with torch.enable_grad():
            hv = torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)
        return torch.cat([h.reshape(B, -1) for h in hv], dim=1).detach().double()

    return hvp, len(params) * n * n


def finite_runs(chains) -> torch.Tensor:
    """[B] bool: the runs whose weights are all finite."""
    finite = None
    for ws in chains:
        for w in ws:
            ok = torch.isfinite(w).flatten(1).all(1)
            finite = ok if finite is None else finite & ok
    return finite


def flat_weights(chain) -> torch.Tensor:
    """The weights of a scalar chain (n = 1) as [B, L]."""
    return torch.cat([w.reshape(-1, 1) for w in chain], dim=1)
