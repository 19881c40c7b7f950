"""Starts, targets and data of the linear-network studies (float64, one run at a time).

Every draw comes from a torch generator the caller seeds (`pipeline.seeds.generator`), so a
run's start is the same however the runs are batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCALAR_STARTS = ("identity", "balanced", "random", "large", "gaussian")
MATRIX_STARTS = ("identity", "orthogonal", "gaussian", "large")


def random_orthogonal(n: int, gen: torch.Generator, dtype=torch.float64):
    """Haar-random orthogonal n x n matrix (QR of a Gaussian with the sign fix)."""
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=gen))
    return (q * torch.sign(torch.diagonal(r))).to(dtype)


def init_chain(kind: str, L: int, n: int, gen: torch.Generator, large_factor: float = 10.0) -> list:
    """Initial weights [W_1..W_L] (float64, [n, n]) of one chain: identity; orthogonal (Haar per
    layer); gaussian (N(0, 1/n) entries); large (`large_factor^(1/L) I`, product `large_factor I`)."""
    if kind == "identity":
        return [torch.eye(n, dtype=torch.float64) for _ in range(L)]
    if kind == "orthogonal":
        return [random_orthogonal(n, gen) for _ in range(L)]
    if kind == "gaussian":
        return [torch.randn(n, n, dtype=torch.float64, generator=gen) / math.sqrt(n) for _ in range(L)]
    if kind == "large":
        return [large_factor ** (1.0 / L) * torch.eye(n, dtype=torch.float64) for _ in range(L)]
    raise ValueError(f"unknown init {kind!r}")


def init_scalar(
    kind: str,
    L: int,
    r: float,
    gen: torch.Generator,
    perturbation: float,
    spread: float,
    large_factor: float = 10.0,
    gaussian_std: float = 1.0,
    lognormal_spread: float = 0.5,
):
    """Initial scalar weights [L] (float64).

    identity: all 1. balanced: the balanced minimum |w_j| = |r|^(1/L) (first weight carries
    r's sign) times (1 + perturbation z_j). random: an unbalanced minimum
    w_j = |r|^(1/L) exp(spread (z_j - mean z)) (product still r), perturbed the same way.
    large: the balanced weights of the product `large_factor * r`, perturbed the same way.
    gaussian: i.i.d. N(0, gaussian_std^2), a generic random start (not at a minimum).
    lognormal: i.i.d. w_j = exp(lognormal_spread z_j), z_j ~ N(0, 1): a generic random start
    around identity, not at a minimum (its product is not r; the first weight carries r's sign).
    """
    if kind == "identity":
        return torch.ones(L, dtype=torch.float64)
    if kind == "lognormal":
        w = torch.exp(lognormal_spread * torch.randn(L, dtype=torch.float64, generator=gen))
        if r < 0:
            w[0] = -w[0]
        return w
    if kind == "gaussian":
        return gaussian_std * torch.randn(L, dtype=torch.float64, generator=gen)
    if kind == "large":
        base = torch.full((L,), (large_factor * abs(r)) ** (1.0 / L), dtype=torch.float64)
    else:
        base = torch.full((L,), abs(r) ** (1.0 / L), dtype=torch.float64)
    if kind == "random" and L > 1:
        z = torch.randn(L, dtype=torch.float64, generator=gen)
        base = base * torch.exp(spread * (z - z.mean()))
    elif kind not in ("balanced", "random", "large"):
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
