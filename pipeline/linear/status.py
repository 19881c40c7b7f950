"""How a run of gradient descent on a linear network ends: one definition for every engine.

- `diverged`: its loss became non-finite or exceeded `blowup`; the run stops updating there.
- `converged`: its loss stayed at most `tol` over its last `tol_window` iterations (the
  fixed-step engine runs the whole budget and looks at its end; the step-rule engine stops a
  run as soon as this holds). `steps_to_tol` is the first iteration of that final streak of
  iterations with loss `<= tol` (NaN for runs that did not converge).
- `oscillating`: neither, and its loss rose (by more than `osc_rise` relative) in at least
  `osc_fraction` of the last `osc_window` iterations of the budget.
- `not_converged`: the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

STATUSES = ("converged", "oscillating", "diverged", "not_converged")


@dataclass(frozen=True)
class Monitoring:
    """When a run has converged, diverged or oscillates, and how its curve is logged."""

    tol: float
    tol_window: int
    blowup: float
    log_points: int = 40
    osc_window: int = 200
    osc_fraction: float = 0.25
    osc_rise: float = 1e-4

    @classmethod
    def from_config(cls, block: Mapping) -> Monitoring:
        """From a config block with tol, tol_window, blowup, log_points and oscillation."""
        osc = block["oscillation"]
        return cls(
            tol=block["tol"],
            tol_window=block["tol_window"],
            blowup=block["blowup"],
            log_points=block["log_points"],
            osc_window=osc["window"],
            osc_fraction=osc["fraction"],
            osc_rise=osc["rise"],
        )

    def window(self, iterations: int) -> int:
        """The number of final iterations over which rises are counted."""
        return max(1, min(self.osc_window, iterations))


def classify(diverged, converged, rises, window: int, fraction: float) -> np.ndarray:
    """Status strings [B] from bool arrays `diverged`, `converged` and rise counts `rises`."""
    diverged, converged = np.asarray(diverged, dtype=bool), np.asarray(converged, dtype=bool)
    oscillating = ~diverged & ~converged & (np.asarray(rises) >= fraction * window)
    status = np.full(len(diverged), "not_converged", dtype=object)
    status[oscillating] = "oscillating"
    status[converged & ~diverged] = "converged"
    status[diverged] = "diverged"
    return status.astype(str)
