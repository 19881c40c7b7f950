"""Trainability maps of the scalar deep linear network: which starts and steps diverge.

A map is a 2-D grid of runs of gradient descent on `l(w) = (s/2)(P - r)^2`, `P = w_1 ... w_L`,
each cell one start and step; its cell is True when the run stayed bounded (its loss never
exceeded `blowup` and stayed finite over `iterations` updates), False when it diverged. Two maps:

- `delta_a`: `w_0 = (1 + a, 1 - a, 1, ..., 1)`, step `delta = f delta*_L`; x axis `f`, y axis `a`;
- `w1_w2`: `w_0 = (w1, w2, slice, ..., slice)` at one fixed step; x axis `w1`, y axis `w2`.

Both starts have `L - 2` equal weights, and gradient descent keeps equal weights equal (they get
the same gradient), so a run is three numbers `(w_1, w_2, v)` with `P = w_1 w_2 v^(L-2)`:

    dl/dw_1 = s (P - r) w_2 v^(L-2),  dl/dw_2 = s (P - r) w_1 v^(L-2),
    dl/dv_j = s (P - r) w_1 w_2 v^(L-3)   (each of the L - 2 equal weights).

That is exact, not an approximation (`tests/test_edge.py` checks it against the full `L`-weight
descent of `pipeline.edge.model`), and costs the same at every depth. The runs go through in
chunks of `chunk` runs for all iterations (a chunk's tensors stay in cache: about 4x the
throughput of one pass over a million runs, bench/bench_edge.py), with no Python loop over runs.

Zooms: window 0 is the map's own extent; window k + 1 is `factor` times smaller, centred on the
boundary cell of window k nearest to a point (`zoom_at` for the first zoom, in units of the
window, then the window's centre), and run again at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.edge.fractal import boundary

DTYPE = torch.float64
MAPS = ("delta_a", "w1_w2")
AXES = {"delta_a": ("delta_factor", "a"), "w1_w2": ("w1", "w2")}


def grouped_descent(
    w1,
    w2,
    v,
    others: int,
    r: float,
    s: float,
    delta,
    iterations: int,
    blowup: float,
    tol: float,
    chunk: int = 16384,
):
    """Fixed-step gradient descent of runs `(w1, w2, v)` ([B] each; `v` repeated `others` times).

    `delta`: [B] steps. Returns numpy `(bounded [B] bool, diverged_step [B] int (-1: never),
    converged [B] bool)`: bounded when the loss stayed finite and `<= blowup` at every iteration
    0..iterations; converged when, in addition, the loss at the last iteration is `<= tol`.
    """
    w1, w2, v, delta = (torch.as_tensor(x, dtype=DTYPE).reshape(-1) for x in (w1, w2, v, delta))
    B = w1.shape[0]
    bounded = torch.ones(B, dtype=torch.bool)
    first = torch.full((B,), -1, dtype=torch.int64)
    converged = torch.zeros(B, dtype=torch.bool)
    limit = 2.0 * blowup / s  # loss <= blowup  <=>  (P - r)^2 <= 2 blowup / s
    for lo in range(0, B, chunk):
        sl = slice(lo, min(lo + chunk, B))
        a, b, c, d = w1[sl].clone(), w2[sl].clone(), v[sl].clone(), delta[sl] * s
        ok = torch.ones(a.shape[0], dtype=torch.bool)
        step = torch.full(a.shape, -1, dtype=torch.int64)
        for t in range(iterations + 1):
            if others == 0:
                e = a * b - r
            else:
                q = c ** (others - 1) if others > 1 else torch.ones_like(c)
                vm = q * c
                ab = a * b
                e = ab * vm - r
            fine = e * e <= limit
            newly = ok & ~fine
            if bool(newly.any()):
                step = torch.where(newly, t, step)
                ok = ok & fine
                if not bool(ok.any()):
                    break
            if t == iterations:
                break
            e = e * d
            if others == 0:
                a, b = a - e * b, b - e * a
            else:
                ev = e * vm
                a, b, c = a - ev * b, b - ev * a, c - (e * ab) * q
        bounded[sl], first[sl] = ok, step
        converged[sl] = ok & (0.5 * s * e * e <= tol)
    return bounded.numpy(), first.numpy(), converged.numpy()


def full_weights(w1, w2, v, others: int) -> np.ndarray:
    """The `[B, L]` weights `(w1, w2, v, ..., v)` of grouped runs (for checks against the full model)."""
    cols = [np.asarray(w1, float), np.asarray(w2, float)] + [np.asarray(v, float)] * others
    return np.stack(cols, axis=1)


@dataclass(frozen=True)
class Window:
    """One window of a map: its axes' ranges (cell centres span [low, high])."""

    level: int
    x_low: float
    x_high: float
    y_low: float
    y_high: float

    def axes(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        return np.linspace(self.x_low, self.x_high, resolution), np.linspace(
            self.y_low, self.y_high, resolution
        )

    def zoom(self, cell: tuple[int, int], resolution: int, factor: float) -> Window:
        """The window `factor` times smaller centred on `cell` (row = y index, column = x index)."""
        x, y = self.axes(resolution)
        cx, cy = x[cell[1]], y[cell[0]]
        hx, hy = (self.x_high - self.x_low) / (2 * factor), (self.y_high - self.y_low) / (2 * factor)
        return Window(self.level + 1, cx - hx, cx + hx, cy - hy, cy + hy)


def nearest_boundary_cell(mask: np.ndarray, at: tuple[float, float]) -> tuple[int, int] | None:
    """(row, column) of the boundary cell of `mask` nearest to `at` = (x, y) in units of the
    window ([0, 1]^2; x along columns, y along rows); None when the map has no boundary."""
    rows, cols = np.nonzero(boundary(mask))
    if rows.size == 0:
        return None
    H, W = mask.shape
    d2 = (cols / max(W - 1, 1) - at[0]) ** 2 + (rows / max(H - 1, 1) - at[1]) ** 2
    k = int(np.argmin(d2))  # ties: the first in row-major order
    return int(rows[k]), int(cols[k])


def starts(map_name: str, block: dict, L: int, window: Window, resolution: int):
    """`(w1, w2, v, delta, others)` of every cell (row-major: rows along y, columns along x)."""
    x, y = window.axes(resolution)
    X, Y = np.meshgrid(x, y, indexing="xy")  # [rows = y, cols = x]
    X, Y = X.reshape(-1), Y.reshape(-1)
    r, s = float(block["target"]), float(block["data_scale"])
    ds = 2.0 / (s * L * abs(r) ** (2 * (L - 1) / L))
    others = L - 2
    if map_name == "delta_a":
        return 1.0 + Y, 1.0 - Y, np.ones_like(X), X * ds, others
    if map_name == "w1_w2":
        delta = np.full_like(X, float(block["delta_factor"]) * ds)
        return X, Y, np.full_like(X, float(block["slice"])), delta, others
    raise ValueError(f"unknown map {map_name!r}")


def first_window(map_name: str, block: dict) -> Window:
    if map_name == "delta_a":
        (x0, x1), (y0, y1) = block["delta_factor"], block["a"]
        return Window(0, float(x0), float(x1), float(y0), float(y1))
    e = float(block["extent"])
    return Window(0, -e, e, -e, e)


def run_map(
    map_name: str,
    block: dict,
    L: int,
    resolution: int,
    iterations: int,
    blowup: float,
    tol: float,
    levels: int,
    factor: float,
    zoom_at,
    chunk: int,
    log=None,
):
    """Every window of one map at depth L: [(Window, bounded, converged, diverged_step)], the
    three grids [R, R] (R = resolution)."""
    if L < 2:
        raise ValueError(f"a map needs depth >= 2, got {L}")
    out, window, at = [], first_window(map_name, block), tuple(zoom_at)
    for level in range(levels + 1):
        w1, w2, v, delta, others = starts(map_name, block, L, window, resolution)
        if log is not None:
            log(f"{map_name} L={L} window {level}: {resolution}x{resolution} runs, {iterations} iterations")
        ok, step, conv = grouped_descent(
            w1,
            w2,
            v,
            others,
            float(block["target"]),
            float(block["data_scale"]),
            delta,
            iterations,
            blowup,
            tol,
            chunk,
        )
        shape = (resolution, resolution)
        out.append((window, ok.reshape(shape), conv.reshape(shape), step.reshape(shape)))
        if level == levels:
            break
        cell = nearest_boundary_cell(ok.reshape(shape), at)
        if cell is None:
            break
        window, at = window.zoom(cell, resolution, factor), (0.5, 0.5)
    return out


def pack(mask: np.ndarray) -> bytes:
    """A boolean grid as bytes (row-major bits, numpy.packbits)."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1)).tobytes()


def unpack(data: bytes, rows: int, cols: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=rows * cols)
    return bits.reshape(rows, cols).astype(bool)
