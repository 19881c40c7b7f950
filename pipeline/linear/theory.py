"""Closed-form quantities of deep linear networks (docs/science.md sections 1-2); numpy only.

Every function works on scalars and numpy arrays (broadcast), so figure and claim code can
use them without importing torch.
"""

from __future__ import annotations

import numpy as np


def delta_star(L, r, s=1.0):
    """Critical step of the scalar network: above it every minimum is unstable.

    `delta*_L = 2 / (s L |r|^(2(L-1)/L))`.
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
