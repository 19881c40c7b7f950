"""Box-counting dimension of the boundary between converging and diverging starts (numpy only).

A basin map is a 2-D boolean grid (True: gradient descent from that start converged). Its
boundary is the set of cells with a 4-neighbour of the other kind (`boundary`). Covering the
grid with non-overlapping `k x k` boxes and counting the boxes that hold a boundary cell gives
`N(k)`; for a set of box-counting dimension `D`, `N(k) ~ k^-D`, so `D` is the least-squares
slope of `log N(k)` against `log(1/k)` (`box_dimension`).

Conventions: boxes tile the grid from its top-left corner and partial boxes at the right and
bottom edges are dropped (`box_counting`: per box size; `box_dimension`: the grid is cropped once
to a multiple of the coarsest size, so that every size sees the same region). The boundary is
always found on the whole grid before any cropping.

Uncertainty (`box_dimension`): a bootstrap over the coarsest boxes. Every finer box lies inside
exactly one coarsest box (all sizes must divide the coarsest), so each occupied coarsest box
carries its own vector of counts, one per size, and `N(k)` is their sum. A bootstrap replicate
draws as many occupied coarsest boxes as there are, with replacement, sums their count vectors
and refits the slope; the interval is the percentile interval of the replicate slopes. Empty
coarsest boxes are left out of the draw: they add nothing at any size, so drawing them would only
change how much of the set a replicate holds, not how its counts scale. The replicates come from
`numpy.random.default_rng(seed)`, so the result is deterministic given the seed.
"""

from __future__ import annotations

import numpy as np


def boundary(mask):
    """Boundary cells `[H, W]` (bool) of a boolean grid `mask [H, W]`.

    A cell is on the boundary when at least one of its (up to four) edge neighbours inside the
    grid has the other value; cells outside the grid do not count as neighbours.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    out = np.zeros_like(mask)
    rows = mask[1:, :] != mask[:-1, :]
    cols = mask[:, 1:] != mask[:, :-1]
    out[1:, :] |= rows
    out[:-1, :] |= rows
    out[:, 1:] |= cols
    out[:, :-1] |= cols
    return out


def _occupied(cells, k):
    """`[H // k, W // k]` bool: which `k x k` boxes of `cells` hold a True cell (partial boxes dropped)."""
    H, W = cells.shape[0] // k, cells.shape[1] // k
    return cells[: H * k, : W * k].reshape(H, k, W, k).any(axis=(1, 3))


def _sizes(box_sizes):
    sizes = np.asarray(box_sizes, dtype=np.int64).ravel()
    if sizes.size == 0 or (sizes < 1).any():
        raise ValueError(f"box sizes must be positive integers, got {box_sizes}")
    return sizes


def box_counting(mask, box_sizes):
    """Number of boxes `N(k)` `[len(box_sizes)]` (int) holding a boundary cell, one per size `k`.

    `mask [H, W]` bool; the boxes of size `k` tile the grid from its top-left corner and the
    partial boxes at the right and bottom edges are dropped.
    """
    cells = boundary(mask)
    return np.array([int(_occupied(cells, int(k)).sum()) for k in _sizes(box_sizes)], dtype=np.int64)


def _slope(x, logN):
    """Least-squares slopes of the rows of `logN [R, n]` against `x [n]`."""
    xc = x - x.mean()
    return (logN - logN.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)


def box_dimension(mask, box_sizes, n_boot: int = 1000, seed=0, level: float = 0.95):
    """Box-counting dimension of the converge/diverge boundary of `mask [H, W]`, with a bootstrap interval.

    `box_sizes`: at least four distinct sizes (cells), each dividing the largest one, `K`; the
    grid is cropped to a multiple of `K` (top-left kept). The dimension is the least-squares
    slope of `log N(k)` against `log(1/k)`; the `level` interval is the percentile interval of
    `n_boot` bootstrap slopes over the occupied `K x K` boxes (module docstring). `seed`: an int
    or a `numpy.random.Generator`. Returns `(dimension, ci_low, ci_high, counts)`, `counts` the
    `N(k)` `[n_sizes]` of the cropped grid for the sizes in increasing order.
    """
    sizes = np.unique(_sizes(box_sizes))
    if sizes.size < 4:
        raise ValueError(f"need at least four distinct box sizes, got {sizes.tolist()}")
    K = int(sizes[-1])
    if (K % sizes).any():
        raise ValueError(f"every box size must divide the largest ({K}), got {sizes.tolist()}")
    cells = boundary(mask)
    H, W = cells.shape[0] // K, cells.shape[1] // K
    if H == 0 or W == 0:
        raise ValueError(f"grid {cells.shape} is smaller than the largest box ({K})")
    cells = cells[: H * K, : W * K]
    # per_box[b, j]: occupied boxes of size sizes[j] inside coarsest box b
    per_box = np.stack(
        [_occupied(cells, int(k)).reshape(H, K // k, W, K // k).sum(axis=(1, 3)).ravel() for k in sizes],
        axis=1,
    )
    per_box = per_box[per_box[:, -1] > 0]
    if per_box.shape[0] == 0:
        raise ValueError("the mask has no boundary (it is all True or all False)")
    counts = per_box.sum(axis=0)
    x = np.log(1.0 / sizes)
    dimension = float(_slope(x, np.log(counts)[None, :])[0])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = per_box.shape[0]
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # [n_boot, n]: times each box drawn
    boot = _slope(x, np.log(draws @ per_box))
    alpha = (1.0 - level) / 2
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return dimension, float(low), float(high), counts
