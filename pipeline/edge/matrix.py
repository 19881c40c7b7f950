"""The sharpness of matrix deep linear networks along fixed-step gradient descent, as a time series.

Single (`W_L ... W_1`) and double (`W_L ... W_1 - V_L ... V_1`) networks on the shared engine
(`pipeline.linear`): gradient descent runs in segments of `every` iterations
(`linear.descent.gradient_descent`, the whole batch as one tensor program), and after each
segment the sharpness `lambda_max(H)` of every run is estimated by batched Lanczos on
Hessian-vector products (`linear.lanczos.lanczos`), warm-started from the previous segment's top
Ritz vector plus `warm_noise` times the run's random start vector (`first_iters` steps from the
random start at iteration 0, `iters` steps after). A run that diverges in a segment is frozen
there (its step is 0 from then on) and gets no further sharpness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.linear.descent import gradient_descent
from pipeline.linear.lanczos import lanczos
from pipeline.linear.network import hessian_vector_product
from pipeline.linear.status import Monitoring


@dataclass
class Series:
    """Outcome of `sharpness_series` for B runs (numpy)."""

    steps: np.ndarray  # [T] iterations at which the sharpness was estimated (0, every, 2 every, ...)
    sharpness: np.ndarray  # [T, B] top Ritz value (NaN once diverged)
    residual: np.ndarray  # [T, B] its Lanczos residual
    loss: np.ndarray  # [T, B] loss at those iterations (NaN once diverged)
    status: np.ndarray  # [B] from linear.status over the whole run
    final_loss: np.ndarray  # [B]
    diverged_step: np.ndarray  # [B] iteration the run was stopped at (NaN: never)
    chains: list  # final weights


def sharpness_series(
    R,
    chains,
    signs,
    delta,
    iterations: int,
    every: int,
    monitoring: Monitoring,
    *,
    first_iters: int,
    iters: int,
    warm_noise: float,
    start: torch.Tensor,
) -> Series:
    """Gradient descent of the batch with the sharpness every `every` iterations (module docstring).

    R [B, n, n]; chains: list per chain of L tensors [B, n, n]; delta [B]; `start` [B, D] the
    runs' random Lanczos start vectors. The status of a run is decided over the whole run as in
    `pipeline.linear.status`: diverged when its loss exceeded `blowup` in some segment, converged
    when its loss stayed `<= tol` over the last `tol_window` iterations (the last segment must be
    at least that long), oscillating or not_converged otherwise (the oscillation test runs on the
    last segment).
    """
    if every < 1 or iterations < every:
        raise ValueError(f"every must lie in [1, iterations], got {every} and {iterations}")
    B = R.shape[0]
    delta = torch.as_tensor(np.asarray(delta, dtype=float), dtype=R.dtype)
    alive = torch.ones(B, dtype=torch.bool)
    steps = list(range(0, iterations + 1, every))
    if steps[-1] != iterations:
        steps.append(iterations)
    T = len(steps)
    sharp = np.full((T, B), np.nan)
    resid = np.full((T, B), np.nan)
    losses = np.full((T, B), np.nan)
    diverged_step = np.full(B, np.nan)
    q = start.double()
    chains = [[w.clone() for w in ws] for ws in chains]
    last = None
    for k, t in enumerate(steps):
        idx = torch.nonzero(alive).flatten()
        if len(idx):
            sub = [[w[idx].double() for w in ws] for ws in chains]
            hvp, _ = hessian_vector_product(R[idx].double(), sub, signs)
            value, vector, residual, _ = lanczos(hvp, q[idx], first_iters if k == 0 else iters)
            sharp[k, idx.numpy()] = value.numpy()
            resid[k, idx.numpy()] = residual.numpy()
            q[idx] = vector + warm_noise * start[idx].double() / start[idx].double().norm(dim=1, keepdim=True)
        if k == T - 1:
            break
        length = steps[k + 1] - t
        last = gradient_descent(R, chains, signs, torch.where(alive, delta, 0.0), length, monitoring)
        chains = last.chains
        if k == 0:
            losses[0] = last.log_loss[0]
        bad = last.status == "diverged"
        newly = bad & alive.numpy()
        diverged_step[newly] = t + last.diverged_step[newly]
        alive &= torch.as_tensor(~bad)
        losses[k + 1] = np.where(alive.numpy(), last.final_loss, np.nan)
        sharp[k + 1 :, newly] = np.nan
    status = last.status.copy()
    status[~np.isnan(diverged_step)] = "diverged"
    final = np.where(np.isnan(diverged_step), last.final_loss, np.nan)
    return Series(
        steps=np.asarray(steps, dtype=np.int64),
        sharpness=sharp,
        residual=resid,
        loss=losses,
        status=status,
        final_loss=final,
        diverged_step=diverged_step,
        chains=chains,
    )


def near_edge_share(sharpness: np.ndarray, delta: np.ndarray, band: float) -> np.ndarray:
    """[B] share of the estimated iterations (finite values of `sharpness [T, B]`) at which
    `|lambda delta / 2 - 1| <= band` (within `band` of `2 / delta`); NaN where none is finite."""
    ratio = sharpness * np.asarray(delta, dtype=float)[None, :] / 2
    finite = np.isfinite(ratio)
    near = finite & (np.abs(ratio - 1) <= band)
    with np.errstate(invalid="ignore"):
        return np.where(finite.sum(0) > 0, near.sum(0) / finite.sum(0), np.nan)
