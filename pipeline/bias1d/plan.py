"""Which runs a 1-D shard holds and their data (docs/science.md section 4): targets, their knots,
the kind of each bias init interval, training points, run ids, the plan of a shard, the
iterations at which runs are measured."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from pipeline.bias1d import model as nets
from pipeline.bias1d.summary import GRADIENT, METHODS, SEARCH
from pipeline.errors import UserError
from pipeline.seeds import numpy_rng
from pipeline.tables import log_steps

TARGET_KINDS = ("piecewise", "sine")


# ---------------------------------------------------------------- targets and data -------------------


def target_values(cfg: dict, name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if name == "piecewise":
        return nets.piecewise_values(cfg["piecewise"]["knots_x"], cfg["piecewise"]["knots_y"], x)
    if name == "sine":
        s, d = cfg["sine"], cfg["data"]
        omega = 2 * math.pi * s["cycles"] / (d["high"] - d["low"])
        return s["amplitude"] * np.sin(omega * (x - d["low"]) + s["phase"])
    raise UserError(f"Unknown bias1d target '{name}'; use one of {', '.join(TARGET_KINDS)}.")


def target_lipschitz(cfg: dict, name: str) -> float:
    """Lipschitz constant of the target on the data interval (exact for both kinds)."""
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    if name == "piecewise":
        kx = np.asarray(cfg["piecewise"]["knots_x"], dtype=np.float64)
        pts = np.unique(np.clip(np.concatenate([[lo, hi], kx]), lo, hi))
        v = target_values(cfg, name, pts)
        return float(np.max(np.abs(np.diff(v) / np.diff(pts))))
    s = cfg["sine"]
    omega = 2 * math.pi * s["cycles"] / (hi - lo)
    # max |A omega cos(omega (x - lo) + phase)| on [lo, hi]: 1 if the phase passes a multiple of pi
    t0, t1 = s["phase"], omega * (hi - lo) + s["phase"]
    if math.floor(t1 / math.pi) >= math.ceil(t0 / math.pi):
        peak = 1.0
    else:
        peak = max(abs(math.cos(t0)), abs(math.cos(t1)))
    return abs(s["amplitude"]) * omega * peak


def target_knots(cfg: dict, name: str) -> np.ndarray | None:
    """The target's interior knots inside the data interval (where it bends), or None for a
    target that bends everywhere (the sine)."""
    if name != "piecewise":
        return None
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    kx = np.asarray(cfg["piecewise"]["knots_x"], dtype=np.float64)[1:-1]
    return kx[(kx > lo) & (kx < hi)]


def interval_kind(cfg: dict, target: str, low: float, high: float) -> tuple[float, str]:
    """(knots inside, kind) of the bias init interval [low, high] for a target: its position
    (`centred` on the data interval or `offset`) and, for a target with knots, how many of
    them it contains (`no knot`, `some knots`, `every knot`); NaN knots for the sine."""
    d = cfg["data"]
    centred = abs((low + high) / 2 - (d["low"] + d["high"]) / 2) <= 1e-9 * (d["high"] - d["low"])
    position = "centred" if centred else "offset"
    knots = target_knots(cfg, target)
    if knots is None:
        return math.nan, position
    inside = int(((knots >= low) & (knots <= high)).sum())
    which = "no knot" if inside == 0 else "every knot" if inside == len(knots) else "some knots"
    return float(inside), f"{position}, {which}"


def training_points(cfg: dict, target: str, seed: int, noise_std: float | None = None):
    """Training inputs (sorted) and labels of one (target, seed) at a label-noise level
    (default `data.noise_std`): `y = target(x) + noise_std z`, the same `z ~ N(0, 1)` at every
    level, so noise_std 0 gives the exact samples."""
    d = cfg["data"]
    noise_std = d["noise_std"] if noise_std is None else noise_std
    rng = numpy_rng("bias1d", "data", target, seed)
    if d["spacing"] == "even":
        x = np.linspace(d["low"], d["high"], d["points"])
    else:
        x = np.sort(rng.uniform(d["low"], d["high"], d["points"]))
    y = target_values(cfg, target, x) + noise_std * rng.standard_normal(d["points"])
    return x, y


def dense_grid(cfg: dict) -> np.ndarray:
    """The dense grid on the data interval where estimates and the test error are taken."""
    return np.linspace(cfg["data"]["low"], cfg["data"]["high"], cfg["grid_points"])


# ---------------------------------------------------------------- runs and init ----------------------


def seeds(cfg: dict, count: int | None = None) -> list[int]:
    """Seed values `seed_offset + 0..count-1` (default: `seeds` of them)."""
    return [cfg["seed_offset"] + k for k in range(cfg["seeds"] if count is None else count)]


def main_seeds(cfg: dict, target: str, depth: int, interval: str, momentum: float) -> list[int]:
    """The main grid's seeds of one cell: `primary_seeds.seeds` of them in the cells it names,
    `seeds` elsewhere."""
    extra = cfg["primary_seeds"]
    primary = (
        target in extra["targets"]
        and depth in extra["depths"]
        and interval in extra["intervals"]
        and any(math.isclose(momentum, m) for m in extra["momenta"])
    )
    return seeds(cfg, max(cfg["seeds"], extra["seeds"]) if primary else None)


def run_id(target, depth, interval, momentum, seed, noise_std=0.0, method=GRADIENT) -> str:
    """`{target}-L{depth}-{interval}-m{momentum}-s{seed}`, then `-n{noise_std}` for noisy labels
    and `-{method}` for a non-gradient update (so the gradient-only noise-free runs keep the
    ids they had before noise and methods existed)."""
    rid = f"{target}-L{depth}-{interval}-m{momentum:g}-s{seed}"
    if noise_std:
        rid += f"-n{noise_std:g}"
    return rid if method == GRADIENT else f"{rid}-{method}"


def plan(cfg: dict, depth: int, targets=None) -> pd.DataFrame:
    """One row per run of the shard of `depth` (all targets unless given): inputs only.

    First the main grid (`main_grid`, claims 5-6) in its order (with `primary_seeds` seeds in
    the cells it names), then the comparison runs of `updates` (`comparison`, `updates.seeds`
    seeds) that the main grid does not already hold.
    """
    targets = list(targets or cfg["targets"])
    rows: dict[str, dict] = {}

    def add(target, iv, momentum, seed, noise_std, method, main):
        rid = run_id(target, depth, iv["name"], momentum, seed, noise_std, method)
        if rid in rows:
            rows[rid]["comparison"] = True
            return
        knots, kind = interval_kind(cfg, target, iv["low"], iv["high"])
        rows[rid] = {
            "run_id": rid,
            "seed": seed,
            "target": target,
            "depth": depth,
            "interval": iv["name"],
            "init_low": float(iv["low"]),
            "init_high": float(iv["high"]),
            "half_width": (float(iv["high"]) - float(iv["low"])) / 2,
            "knots_inside": knots,
            "interval_kind": kind,
            "momentum": float(momentum),
            "lr": float(cfg["optimizer"]["lr"]),
            "noise_std": float(noise_std),
            "method": method,
            "main_grid": main,
            "comparison": not main,
        }

    for target, iv, momentum in itertools.product(targets, cfg["intervals"], cfg["optimizer"]["momenta"]):
        for seed in main_seeds(cfg, target, depth, iv["name"], momentum):
            add(target, iv, momentum, seed, cfg["data"]["noise_std"], GRADIENT, True)
    up = cfg["updates"]
    if up["enabled"] and depth in up["depths"]:
        grid = itertools.product(
            [t for t in up["targets"] if t in targets],
            [iv for iv in cfg["intervals"] if iv["name"] in up["intervals"]],
            up["momenta"],
            up["noise_stds"],
            METHODS,
            seeds(cfg, up["seeds"]),
        )
        for target, iv, momentum, noise_std, method, seed in grid:
            add(target, iv, momentum, seed, noise_std, method, False)
    return pd.DataFrame(list(rows.values()))


# ---------------------------------------------------------------- measured iterations ----------------


def snapshot_steps(cfg: dict) -> list[int]:
    """The iterations at which every run is measured: `snapshots` up to the budget, and the end."""
    its = cfg["optimizer"]["iterations"]
    return sorted({s for s in cfg["snapshots"] if s <= its} | {its})


def trace_steps(cfg: dict) -> list[int]:
    """The iterations at which the comparison's runs are measured (table `progress`): the
    curves' log-spaced steps, `updates.trace_points` evenly spaced ones and the snapshots."""
    its = cfg["optimizer"]["iterations"]
    even = np.round(np.linspace(0, its, cfg["updates"]["trace_points"] + 1)).astype(int)
    curve = set(log_steps(its, cfg["curve_points"]).tolist())
    return sorted(curve | set(even.tolist()) | set(snapshot_steps(cfg)))


def searches_done(cfg: dict, runs: pd.DataFrame, steps) -> np.ndarray:
    """`[R, S]` kink searches each run has had after each number of gradient steps."""
    k = cfg["updates"]["every"]
    steps = np.asarray(steps, dtype=np.int64)
    return np.where(runs["method"].eq(SEARCH).to_numpy()[:, None], steps[None, :] // k, 0)


def truth_mse(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`[R]` training MSE of the true target itself (the mean squared label noise)."""
    truth = np.stack([target_values(cfg, t, x) for t, x in zip(runs["target"], xs, strict=True)])
    return ((ys - truth) ** 2).mean(-1)


def fit_threshold(cfg: dict, runs: pd.DataFrame, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`[R]` the training MSE at which a run has fitted its data (`steps_to_fit`): that of the
    true target plus `fit_tolerance` squared (an RMS error within the tolerance on exact data)."""
    return truth_mse(cfg, runs, xs, ys) + cfg["fit_tolerance"] ** 2
