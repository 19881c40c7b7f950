"""The stability study's training step (docs/science.md sections 1-2): a batch of runs of
fixed-step gradient descent on the shared linear-network engine (`pipeline.linear`), then the
sharpness lambda_max at the end of every run that did not diverge, and its step grid."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.linear import theory
from pipeline.linear.descent import GDResult, gradient_descent
from pipeline.linear.lanczos import sharpness
from pipeline.linear.status import Monitoring

# Runs per Lanczos chunk of the final sharpness.
SHARPNESS_CHUNK = 256


def scalar_deltas(block: dict, L: int, r: float, s: float) -> list[tuple[float, str]]:
    """Absolute log-spaced grid plus factors of delta*_L(r, s): [(delta, grid), ...]."""
    grid = [
        (float(d), "absolute")
        for d in np.geomspace(block["delta_min"], block["delta_max"], block["delta_num"])
    ]
    ds = float(theory.delta_star(L, r, s))
    return grid + [(f * ds, "relative") for f in block["delta_factors"]]


def train(R, chains, signs, sigma, delta: np.ndarray, iterations: int, engine: dict, log=None):
    """Gradient descent of the batch, then the sharpness at its end: (GDResult, outcome columns).

    `engine`: the study's engine settings (tol, blowup, oscillation, sharpness_iters, base_seed).
    """
    res: GDResult = gradient_descent(
        R,
        chains,
        signs,
        torch.tensor(delta),
        iterations,
        Monitoring.from_config(engine),
        sigma=sigma,
        log=log,
    )
    diverged = res.status == "diverged"
    if log is not None:
        log(f"sharpness of {int((~diverged).sum())} runs ({engine['sharpness_iters']} Lanczos steps)")
    sharp, residual = sharpness(
        R,
        res.chains,
        signs,
        sigma,
        iters=engine["sharpness_iters"],
        gen=torch.Generator().manual_seed(engine["base_seed"]),
        mask=~diverged,
        chunk=SHARPNESS_CHUNK,
    )
    return res, {
        "iterations": iterations,
        "status": res.status,
        "final_loss": res.final_loss,
        "sharpness": np.where(diverged, np.nan, sharp),
        "sharpness_residual": np.where(diverged, np.nan, residual),
        "two_over_delta": 2.0 / delta,
        "steps_to_tol": res.steps_to_tol,
        "diverged_step": res.diverged_step,
    }
