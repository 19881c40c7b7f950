"""Fixed-step gradient descent of a whole batch of linear networks, as one tensor program.

Every run has its own target, data covariance, initial weights and step size. The hot loop
keeps every matrix runs-innermost, [n, n, B]: a product of B small matrices is then n fused
multiply-adds over contiguous [n, n, B] blocks, about twice as fast on a CPU as torch.bmm on
[B, n, n] at n = 10 (measured: 0.19 vs 0.35 ms for B = 2000). The gradient is the one of
`pipeline.linear.network` (written out by hand), applied layer by layer in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline import tables
from pipeline.linear.status import Monitoring, classify


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


@dataclass
class GDResult:
    """Outcome of `gradient_descent` for B runs."""

    chains: list  # final weights, [[W_1..W_L] per chain], each [B, n, n]
    final_loss: np.ndarray  # [B]; for a diverged run, the loss when it was stopped
    status: np.ndarray  # [B] strings from status.STATUSES
    steps_to_tol: np.ndarray  # [B] first iteration of the final streak with loss <= tol (NaN: not converged)
    diverged_step: np.ndarray  # [B] iteration at which the run was stopped (NaN if never)
    log_steps: np.ndarray  # [T] logged iterations (log-spaced, 0 and the last included)
    log_loss: np.ndarray  # [T, B] loss at those iterations (NaN after divergence)
    log_distance: np.ndarray  # [T, B] ||R - Rhat||_F at those iterations


def gradient_descent(
    R, chains, signs, delta, iterations: int, monitoring: Monitoring, *, sigma=None, log=None
) -> GDResult:
    """Full-batch gradient descent of B runs as one tensor program (no Python loop over runs).

    R: [B, n, n] targets; chains: list (one per chain) of lists of L tensors [B, n, n] (copied,
    not modified); signs: +1/-1 per chain; delta: [B] step sizes; sigma: [B, n, n] data
    covariances or None (whitened). Statuses as in `pipeline.linear.status` (a diverged run
    stops updating, the others go on for the whole budget). `log(message)`, if given, is told
    the progress about ten times per run.
    """
    B = R.shape[0]
    dtype = R.dtype
    tol, blowup = monitoring.tol, monitoring.blowup
    chains = [[_to_inner(w.detach()) for w in ws] for ws in chains]
    R = _to_inner(R)
    sigma = None if sigma is None else _to_inner(sigma)
    delta = torch.as_tensor(delta, dtype=dtype).reshape(1, 1, B)
    signs = [float(s) for s in signs]
    log_steps = tables.log_steps(iterations, monitoring.log_points)
    log_at = {int(t): i for i, t in enumerate(log_steps)}
    log_loss = torch.full((len(log_steps), B), float("nan"), dtype=torch.float64)
    log_dist = torch.full((len(log_steps), B), float("nan"), dtype=torch.float64)
    alive = torch.ones(B, dtype=torch.bool)
    stop_loss = torch.full((B,), float("nan"), dtype=torch.float64)
    stopped_at = torch.full((B,), -1, dtype=torch.int64)
    last_above = torch.full((B,), -1, dtype=torch.int64)  # last iteration with loss > tol
    tol_from = iterations - max(1, min(monitoring.tol_window, iterations + 1)) + 1
    window = monitoring.window(iterations)
    rises = torch.zeros(B, dtype=torch.int64)
    report_every = max(1, iterations // 10)
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
            last_above = torch.where(cur <= tol, last_above, t)
            if t > iterations - window and prev is not None:
                rises += (cur > prev * (1 + monitoring.osc_rise)) & alive
            prev = cur
            if t in log_at:
                i = log_at[t]
                log_loss[i] = torch.where(alive, cur.double(), float("nan"))
                log_dist[i] = torch.where(alive, E.double().pow(2).sum(dim=(0, 1)).sqrt(), float("nan"))
            if log is not None and t % report_every == 0:
                log(f"iteration {t} of {iterations}: {int(alive.sum())} of {B} runs not diverged")
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
    converged = alive & (last_above < tol_from)
    status = classify(~alive.numpy(), converged.numpy(), rises.numpy(), window, monitoring.osc_fraction)
    as_float = lambda x: np.where(x.numpy() < 0, np.nan, x.numpy().astype(float))  # noqa: E731
    return GDResult(
        chains=chains,
        final_loss=final,
        status=status,
        steps_to_tol=np.where(converged.numpy(), (last_above + 1).numpy().astype(float), np.nan),
        diverged_step=as_float(stopped_at),
        log_steps=log_steps,
        log_loss=log_loss.numpy(),
        log_distance=log_dist.numpy(),
    )
