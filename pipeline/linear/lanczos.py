"""Batched Lanczos on Hessian-vector products: the sharpness lambda_max of every run's loss."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.linear.network import finite_runs, hessian_vector_product


def lanczos(hvp, q, iters: int):
    """(top Ritz value [B], its unit Ritz vector [B, D], its residual [B], Lanczos steps taken)
    of `iters` batched Lanczos steps with full reorthogonalisation on `hvp` from the start
    vectors q [B, D] (a given start, so that it can be warm-started). The Ritz value is a lower
    estimate of lambda_max, exact once the Krylov space is exhausted (at most D steps); the
    residual `||H y - theta y|| = |beta_k s_k|` bounds its distance to an eigenvalue. Runs
    whose Lanczos matrix is not finite get NaN and a zero vector."""
    B, D = q.shape
    k = max(1, min(iters, D))
    q = q.double()
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-300)
    Q = torch.zeros(k, B, D, dtype=torch.float64)
    alphas = torch.zeros(B, k, dtype=torch.float64)
    betas = torch.zeros(B, k, dtype=torch.float64)
    q_prev = torch.zeros_like(q)
    beta_prev = torch.zeros(B, 1, dtype=torch.float64)
    for i in range(k):
        Q[i] = q
        w = hvp(q)
        a = (w * q).sum(1, keepdim=True)
        w = w - a * q - beta_prev * q_prev
        coef = torch.einsum("kbd,bd->kb", Q[: i + 1], w)
        w = w - torch.einsum("kb,kbd->bd", coef, Q[: i + 1])
        b = w.norm(dim=1, keepdim=True)
        alphas[:, i] = a[:, 0]
        betas[:, i] = b[:, 0]
        live = b > 1e-10 * (a.abs() + 1e-300)
        q_prev, q = q, torch.where(live, w / b.clamp_min(1e-300), 0.0)
        beta_prev = torch.where(live, b, 0.0)
    off = torch.where(betas[:, :-1] > 1e-10 * (alphas[:, :-1].abs() + 1e-300), betas[:, :-1], 0.0)
    T = torch.diag_embed(alphas) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    value = torch.full((B,), float("nan"), dtype=torch.float64)
    residual = torch.full((B,), float("nan"), dtype=torch.float64)
    vector = torch.zeros(B, D, dtype=torch.float64)
    idx = torch.nonzero(torch.isfinite(T).flatten(1).all(1)).flatten()
    if len(idx):
        try:
            vals, vecs = torch.linalg.eigh(T[idx])
            value[idx] = vals[:, -1]
            residual[idx] = (betas[idx, -1] * vecs[:, -1, -1]).abs()
            vector[idx] = torch.einsum("bk,kbd->bd", vecs[:, :, -1], Q[:, idx])
        except torch.linalg.LinAlgError:  # an ill-conditioned batch element: one by one
            for b in idx.tolist():
                try:
                    vals, vecs = torch.linalg.eigh(T[b])
                except torch.linalg.LinAlgError:
                    continue
                value[b] = vals[-1]
                residual[b] = (betas[b, -1] * vecs[-1, -1]).abs()
                vector[b] = vecs[:, -1] @ Q[:, b]
    vector = vector / vector.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return value, vector, residual, k


def memory_chunk(D: int, iters: int, memory: float = 2e7) -> int:
    """Runs per Lanczos chunk whose basis (iters x D numbers per run) holds about `memory` numbers."""
    return max(1, int(memory // (max(1, min(iters, D)) * D)))


def sharpness(R, chains, signs, sigma=None, *, iters: int, gen: torch.Generator, mask=None, chunk=None):
    """Largest Hessian eigenvalue of each run's loss at `chains`, by batched Lanczos: (value,
    residual), two arrays [B].

    Hessian-vector products by autograd double-backward (float64), batched over runs (the
    Hessian of the summed loss is block-diagonal over runs); `iters` Lanczos steps with full
    reorthogonalisation from random starts drawn from `gen`, in chunks of `chunk` runs
    (default: `memory_chunk`). The residual `||H y - theta y||` of the top Ritz pair
    (theta, y) bounds the distance from theta to an eigenvalue of H; the largest eigenvalue is
    at least theta, and `theta + residual` is the conservative value a check against 2/delta
    uses (0 when the Krylov space is exhausted, e.g. for the scalar network). Runs outside
    `mask` (bool [B], e.g. the diverged ones), runs with non-finite weights and runs whose
    Lanczos matrix is not finite get NaN.
    """
    B = R.shape[0]
    D = sum(len(ws) for ws in chains) * R.shape[-1] ** 2
    chunk = chunk or memory_chunk(D, iters)
    out = torch.full((B,), float("nan"), dtype=torch.float64)
    res = torch.full((B,), float("nan"), dtype=torch.float64)
    finite = finite_runs(chains)
    if mask is not None:
        finite &= torch.as_tensor(np.asarray(mask, dtype=bool))
    for start in range(0, B, chunk):
        idx = torch.arange(start, min(start + chunk, B))
        idx = idx[finite[idx]]
        if len(idx) == 0:
            continue
        sub = [[w[idx].double() for w in ws] for ws in chains]
        sub_sigma = None if sigma is None else sigma[idx].double()
        hvp, D = hessian_vector_product(R[idx].double(), sub, signs, sub_sigma)
        q = torch.randn(len(idx), D, dtype=torch.float64, generator=gen)
        out[idx], _, res[idx], _ = lanczos(hvp, q, iters)
    return out.numpy(), res.numpy()
