"""Lyapunov stability of gradient descent on deep linear (residual) networks: theory and engine.

docs/science.md sections 1-2. The engine runs gradient descent on products of matrices
`Rhat = sum_c sign_c W^c_L ... W^c_1` (one chain: the single network; two chains with signs
+1, -1: the double network `W_L...W_1 - V_L...V_1`; `n = 1`: the scalar network) for a whole
batch of runs at once. Every run has its own target `R`, data covariance `Sigma = X X^T / N`
(None: whitened data, `Sigma = I`), initial weights and step size. The loss of a run is
`l = 1/2 tr((R - Rhat) Sigma (R - Rhat)^T)`, and with `G = (R - Rhat) Sigma` its gradient is
`dl/dW_j = -sign (W_L...W_{j+1})^T G (W_{j-1}...W_1)^T`, written out by hand on stacked
`[runs, n, n]` tensors (one leaf tensor per layer), three batched matmuls per layer and step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline import tables

STATUSES = ("converged", "oscillating", "diverged", "not_converged")

# ------------------------------------------------------------------------------ theory ----


def delta_star(L, r, s=1.0):
    """Critical step of the scalar network: above it every minimum is unstable.

    `delta*_L = 2 / (s L |r|^(2(L-1)/L))`; works on scalars and numpy arrays.
    """
    return 2.0 / balanced_sharpness(L, r, s)


def balanced_sharpness(L, r, s=1.0):
    """Largest Hessian eigenvalue at the balanced minimum: `s L |r|^(2(L-1)/L)` (the flattest)."""
    L = np.asarray(L, dtype=float)
    return s * L * np.abs(r) ** (2.0 * (L - 1.0) / L)


def minimum_sharpness(weights, r, s=1.0):
    """Largest Hessian eigenvalue at a minimum `prod w = r` of the scalar network: `s r^2 sum 1/w_j^2`."""
    w = np.asarray(weights, dtype=float)
    return s * r**2 * np.sum(1.0 / w**2, axis=-1)


def delta_t1(L, rho):
    """Theorem 1 sufficient step bound (docs/science.md, section 2): `1 / (L max(1, rho)^(2(L-1)/L))`."""
    L = np.asarray(L, dtype=float)
    return 1.0 / (L * np.maximum(1.0, rho) ** (2.0 * (L - 1.0) / L))


def delta_relative(c, L, sigma_max):
    """Step relative to a matrix (non-normal targets): `c / (L max(1, sigma_max)^(2(L-1)/L))`."""
    return c * delta_t1(L, sigma_max)


# ------------------------------------------------------------------------------ helpers ---


def _mm(a, b):
    """a @ b, batched (elementwise for 1x1 matrices)."""
    return a * b if a.shape[-1] == 1 else torch.bmm(a, b)


def _mm_tn(a, b):
    """a^T @ b, batched."""
    return a * b if a.shape[-1] == 1 else torch.bmm(a.mT, b)


# The engine's hot loop keeps every matrix runs-innermost, [n, n, B]: a product of B small
# matrices is then n fused multiply-adds over contiguous [n, n, B] blocks, about twice as fast
# on a CPU as torch.bmm on [B, n, n] at n = 10 (measured: 0.19 vs 0.35 ms for B = 2000).
def _to_inner(x):
    """[B, n, n] -> [n, n, B], always a copy (the engine updates it in place; for n = 1 the
    permuted view is already contiguous, so .contiguous() alone would alias the caller's)."""
    return x.permute(1, 2, 0).clone(memory_format=torch.contiguous_format)


def _from_inner(x):
    """[n, n, B] -> [B, n, n], a copy."""
    return x.permute(2, 0, 1).clone(memory_format=torch.contiguous_format)


def _imm(a, b, out=None):
    """a @ b for runs-innermost [n, n, B] matrices (either may be a transposed view);
    accumulates into `out` when given."""
    k0 = 0
    if out is None:
        out = torch.mul(a[:, 0:1], b[0:1])
        k0 = 1
    for k in range(k0, a.shape[1]):
        out.addcmul_(a[:, k : k + 1], b[k : k + 1])
    return out


def _t(x):
    """Transpose of runs-innermost matrices (a view)."""
    return x.transpose(0, 1)


def chain_product(ws):
    """W_L ... W_1 for a chain given as [W_1, ..., W_L], each [B, n, n]."""
    p = ws[0]
    for w in ws[1:]:
        p = _mm(w, p)
    return p


def network_output(chains, signs):
    out = None
    for ws, sign in zip(chains, signs, strict=True):
        p = chain_product(ws)
        out = sign * p if out is None else out + sign * p
    return out


def loss(R, chains, signs, sigma=None):
    """Per-run loss [B]: 1/2 tr(E Sigma E^T), E = R - Rhat (differentiable; used by autograd)."""
    E = R - network_output(chains, signs)
    ES = E if sigma is None else _mm(E, sigma)
    return 0.5 * (ES * E).sum(dim=(-2, -1))


def loss_and_gradients(R, chains, signs, sigma=None):
    """Per-run loss [B] and the hand-written batched gradients dl/dW of every layer of every
    chain (lists like `chains`), from one forward pass (the prefix products serve both)."""
    prefixes, out = [], None
    for ws, sign in zip(chains, signs, strict=True):
        prefix = [None]
        for w in ws:
            prefix.append(w if prefix[-1] is None else _mm(w, prefix[-1]))
        prefixes.append(prefix)
        out = sign * prefix[-1] if out is None else out + sign * prefix[-1]
    E = R - out
    G = E if sigma is None else _mm(E, sigma)
    grads_all = []
    for ws, prefix, sign in zip(chains, prefixes, signs, strict=True):
        grads = [None] * len(ws)
        M = -sign * G
        for j in range(len(ws) - 1, -1, -1):
            grads[j] = M if prefix[j] is None else _mm(M, prefix[j].mT)
            if j > 0:
                M = _mm_tn(ws[j], M)
        grads_all.append(grads)
    return 0.5 * (G * E).sum(dim=(-2, -1)), grads_all


def gradients(R, chains, signs, sigma=None):
    """Hand-written batched gradients dl/dW for every layer of every chain (lists like `chains`)."""
    return loss_and_gradients(R, chains, signs, sigma)[1]


# ------------------------------------------------------------------------------ engine ----


@dataclass
class GDResult:
    """Outcome of `gradient_descent` for B runs."""

    chains: list  # final weights, [[W_1..W_L] per chain], each [B, n, n]
    final_loss: np.ndarray  # [B]; for a diverged run, the loss when it was stopped
    status: np.ndarray  # [B] strings from STATUSES
    steps_to_tol: np.ndarray  # [B] first iteration with loss <= tol (NaN if never)
    diverged_step: np.ndarray  # [B] iteration at which the run was stopped (NaN if never)
    log_steps: np.ndarray  # [T] logged iterations (log-spaced, 0 and the last included)
    log_loss: np.ndarray  # [T, B] loss at those iterations (NaN after divergence)
    log_distance: np.ndarray  # [T, B] ||R - Rhat||_F at those iterations


def gradient_descent(
    R,
    chains,
    signs,
    delta,
    iterations: int,
    *,
    sigma=None,
    tol: float,
    blowup: float,
    tol_window: int = 1,
    log_points: int = 50,
    osc_window: int = 200,
    osc_fraction: float = 0.25,
    osc_rise: float = 1e-4,
) -> GDResult:
    """Full-batch gradient descent of B runs as one tensor program (no Python loop over runs).

    R: [B, n, n] targets; chains: list (one per chain) of lists of L tensors [B, n, n] (copied,
    not modified); signs: +1/-1 per chain; delta: [B] step sizes; sigma: [B, n, n] data
    covariances or None (whitened). A run whose loss exceeds `blowup` or is not finite is
    `diverged` and stops updating (the others go on); at the end a run is `converged` when
    its loss stayed <= tol over its last `tol_window` iterations, `oscillating` when its loss
    rose (by more than `osc_rise` relative) in at least `osc_fraction` of the last
    `osc_window` iterations, else `not_converged`.
    """
    B = R.shape[0]
    dtype = R.dtype
    chains = [[_to_inner(w.detach()) for w in ws] for ws in chains]
    R = _to_inner(R)
    sigma = None if sigma is None else _to_inner(sigma)
    delta = torch.as_tensor(delta, dtype=dtype).reshape(1, 1, B)
    signs = [float(s) for s in signs]
    log_steps = tables.log_steps(iterations, log_points)
    log_at = {int(t): i for i, t in enumerate(log_steps)}
    log_loss = torch.full((len(log_steps), B), float("nan"), dtype=torch.float64)
    log_dist = torch.full((len(log_steps), B), float("nan"), dtype=torch.float64)
    alive = torch.ones(B, dtype=torch.bool)
    stop_loss = torch.full((B,), float("nan"), dtype=torch.float64)
    stopped_at = torch.full((B,), -1, dtype=torch.int64)
    first_tol = torch.full((B,), -1, dtype=torch.int64)
    above_late = torch.zeros(B, dtype=torch.bool)  # loss > tol in the last tol_window iterations
    tol_from = iterations - max(1, min(tol_window, iterations + 1)) + 1
    window = max(1, min(osc_window, iterations))
    rises = torch.zeros(B, dtype=torch.int64)
    prev = None
    with torch.no_grad():
        for t in range(iterations + 1):
            # forward: prefix products A_j = W_{j-1} ... W_1 per chain (A_1 = I is None)
            prefixes, out = [], None
            for ws, sign in zip(chains, signs, strict=True):
                pre = [None, ws[0]]
                for w in ws[1:]:
                    pre.append(_imm(w, pre[-1]))
                prefixes.append(pre)
                out = sign * pre[-1] if out is None else out.add_(pre[-1], alpha=sign)
            E = R - out
            G = E if sigma is None else _imm(E, sigma)
            cur = 0.5 * (G * E).sum(dim=(0, 1))
            # bookkeeping on [B] vectors
            newly_bad = alive & ~(cur <= blowup)
            if bool(newly_bad.any()):
                stop_loss = torch.where(newly_bad, cur.double(), stop_loss)
                stopped_at = torch.where(newly_bad, t, stopped_at)
                alive = alive & ~newly_bad
            first_tol = torch.where((first_tol < 0) & (cur <= tol) & alive, t, first_tol)
            if t >= tol_from:
                above_late |= ~(cur <= tol)
            if t > iterations - window and prev is not None:
                rises += (cur > prev * (1 + osc_rise)) & alive
            prev = cur
            if t in log_at:
                i = log_at[t]
                log_loss[i] = torch.where(alive, cur.double(), float("nan"))
                log_dist[i] = torch.where(alive, E.double().pow(2).sum(dim=(0, 1)).sqrt(), float("nan"))
            if t == iterations:
                break
            # backward + update, per chain from the last layer down: W_j += delta sign M_j A_j^T,
            # M_{j-1} = W_j^T M_j with the old W_j (frozen runs get a zero step)
            step = torch.where(alive.reshape(1, 1, B), delta, 0.0)
            for ws, pre, sign in zip(chains, prefixes, signs, strict=True):
                M = G * (step * sign)
                for j in range(len(ws) - 1, -1, -1):
                    Mnext = _imm(_t(ws[j]), M) if j > 0 else None
                    if pre[j] is None:
                        ws[j].add_(M)
                    else:
                        _imm(M, _t(pre[j]), out=ws[j])
                    M = Mnext
    chains = [[_from_inner(w) for w in ws] for ws in chains]
    final = torch.where(alive, cur.double(), stop_loss).numpy()
    converged = alive & ~above_late
    oscillating = alive & ~converged & (rises >= osc_fraction * window)
    status = np.full(B, "not_converged", dtype=object)
    status[oscillating.numpy()] = "oscillating"
    status[converged.numpy()] = "converged"
    status[(~alive).numpy()] = "diverged"
    as_float = lambda x: np.where(x.numpy() < 0, np.nan, x.numpy().astype(float))  # noqa: E731
    return GDResult(
        chains=chains,
        final_loss=final,
        status=status.astype(str),
        steps_to_tol=as_float(first_tol),
        diverged_step=as_float(stopped_at),
        log_steps=log_steps,
        log_loss=log_loss.numpy(),
        log_distance=log_dist.numpy(),
    )


# --------------------------------------------------------------------------- sharpness ----


def sharpness(R, chains, signs, sigma=None, iters: int = 20, chunk: int = 256, seed: int = 0, mask=None):
    """Largest Hessian eigenvalue of each run's loss at `chains`, by batched Lanczos: (value,
    residual), two arrays [B].

    Hessian-vector products by autograd double-backward (float64), batched over runs (the
    Hessian of the summed loss is block-diagonal over runs); `iters` Lanczos steps with full
    reorthogonalisation, in chunks of `chunk` runs. The residual `||H y - theta y||` of the top
    Ritz pair (theta, y) bounds the distance from theta to an eigenvalue of H; the largest
    eigenvalue is at least theta, and `theta + residual` is the conservative value a check
    against 2/delta uses (0 when the Krylov space is exhausted, e.g. for the scalar network).
    Runs outside `mask` (bool [B], e.g. the diverged ones), runs with non-finite weights and
    runs whose Lanczos matrix is not finite get NaN.
    """
    B = R.shape[0]
    out = torch.full((B,), float("nan"), dtype=torch.float64)
    res = torch.full((B,), float("nan"), dtype=torch.float64)
    finite = torch.ones(B, dtype=torch.bool)
    for ws in chains:
        for w in ws:
            finite &= torch.isfinite(w).flatten(1).all(1)
    if mask is not None:
        finite &= torch.as_tensor(np.asarray(mask, dtype=bool))
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, B, chunk):
        idx = torch.arange(start, min(start + chunk, B))
        idx = idx[finite[idx]]
        if len(idx) == 0:
            continue
        sub = [[w[idx].double() for w in ws] for ws in chains]
        out[idx], res[idx] = _lanczos_max(
            R[idx].double(), sub, signs, None if sigma is None else sigma[idx].double(), iters, gen
        )
    return out.numpy(), res.numpy()


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


def _lanczos_max(R, chains, signs, sigma, iters, gen):
    hvp, D = hessian_vector_product(R, chains, signs, sigma)
    value, _, residual, _ = lanczos(
        hvp, torch.randn(R.shape[0], D, dtype=torch.float64, generator=gen), iters
    )
    return value, residual


# ------------------------------------------------------------------- inits and targets ----


def random_orthogonal(n: int, gen: torch.Generator, dtype=torch.float64):
    """Haar-random orthogonal n x n matrix (QR of a Gaussian with the sign fix)."""
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=gen))
    return (q * torch.sign(torch.diagonal(r))).to(dtype)


def init_chain(kind: str, L: int, n: int, gen: torch.Generator) -> list:
    """Initial weights [W_1..W_L] (float64, [n, n]) of one run for the matrix studies."""
    if kind == "identity":
        return [torch.eye(n, dtype=torch.float64) for _ in range(L)]
    if kind == "orthogonal":
        return [random_orthogonal(n, gen) for _ in range(L)]
    if kind == "gaussian":
        return [torch.randn(n, n, dtype=torch.float64, generator=gen) / math.sqrt(n) for _ in range(L)]
    raise ValueError(f"unknown init {kind!r}")


def init_scalar(kind: str, L: int, r: float, gen: torch.Generator, perturbation: float, spread: float):
    """Initial scalar weights [L] (float64) for the scalar study.

    identity: all 1. balanced: the balanced minimum |w_j| = |r|^(1/L) (first weight carries
    r's sign) times (1 + perturbation z_j). random: an unbalanced minimum
    w_j = |r|^(1/L) exp(spread (z_j - mean z)) (product still r), perturbed the same way.
    """
    if kind == "identity":
        return torch.ones(L, dtype=torch.float64)
    base = torch.full((L,), abs(r) ** (1.0 / L), dtype=torch.float64)
    if kind == "random" and L > 1:
        z = torch.randn(L, dtype=torch.float64, generator=gen)
        base = base * torch.exp(spread * (z - z.mean()))
    elif kind not in ("balanced", "random"):
        raise ValueError(f"unknown scalar init {kind!r}")
    if r < 0:
        base[0] = -base[0]
    return base * (1 + perturbation * torch.randn(L, dtype=torch.float64, generator=gen))


@dataclass
class Target:
    R: torch.Tensor  # [n, n] float64
    eigenvalues: torch.Tensor
    rho: float
    sigma_max: float
    cond_eigvec: float
    eig_min: float


def random_target(n: int, low: float, high: float, eigvec: str, gen: torch.Generator) -> Target:
    """R = S diag(lam) S^-1 with lam ~ U(low, high); S orthogonal (symmetric R) or Gaussian."""
    lam = low + (high - low) * torch.rand(n, dtype=torch.float64, generator=gen)
    if eigvec == "orthogonal":
        S = random_orthogonal(n, gen)
        R = S @ torch.diag(lam) @ S.T
        R = 0.5 * (R + R.T)
    elif eigvec == "gaussian":
        S = torch.randn(n, n, dtype=torch.float64, generator=gen)
        R = S @ torch.diag(lam) @ torch.linalg.inv(S)
    else:
        raise ValueError(f"unknown eigvec {eigvec!r}")
    return Target(
        R=R,
        eigenvalues=lam,
        rho=float(lam.abs().max()),
        sigma_max=float(torch.linalg.matrix_norm(R, ord=2)),
        cond_eigvec=float(torch.linalg.cond(S)),
        eig_min=float(lam.min()),
    )


def data_covariance(n: int, mode: str, n_points: int, gen: torch.Generator, scale: float = 1.0):
    """X X^T / N of the data: `scale * I` when whitened, else of N Gaussian points N(0, scale I)."""
    if mode == "whitened":
        return scale * torch.eye(n, dtype=torch.float64)
    if mode == "random":
        X = torch.randn(n, n_points, dtype=torch.float64, generator=gen) * math.sqrt(scale)
        return X @ X.T / n_points
    raise ValueError(f"unknown data mode {mode!r}")
