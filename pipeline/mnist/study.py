"""The MNIST study (docs/science.md section 5): config slice -> one trained model -> tables.

Runs come in named parts (`mnist.parts`): each part shares every setting of the mnist block
except a few overrides (`pipeline.config.MNIST_PART_KEYS`) and has its own variants and seeds.
A shard is one variant of one part trained from one seed: `run_shard(cfg, variant, part, seed,
data_dir, checkpoint_dir)` (cfg: `pipeline.config.mnist_part(config, part)`) loads the data
stage's files, trains (resuming from the checkpoint when one of the same settings exists) and
returns the tables `metrics` (one row per epoch), `drift` (per epoch, network and layer) and
`lipschitz` (per class), each with `variant`, `part` and `seed` columns, and the final model
state as `model`. `summary` gives one row per variant, part and seed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from pipeline.data import load_mnist
from pipeline.mnist.train import train

TABLES = ("metrics", "drift", "lipschitz")
KEYS = ["variant", "part", "seed"]


def run_shard(
    cfg: dict,
    variant: str,
    part: str,
    seed: int,
    data_dir: str | Path,
    checkpoint_dir: str | Path,
    log=None,
    progress=None,
) -> dict:
    """Train one variant of one part from one seed; the tables of TABLES and `model`.

    `log` receives one line per epoch (default: stderr); `progress`, if a terminal, tqdm bars.
    The checkpoint is removed by `finish(checkpoint_dir)` once the caller has written the outputs.
    """
    cfg = {**cfg, "seed": int(seed)}
    out = train(cfg, variant, load_mnist(data_dir), checkpoint_dir, log or sys.stderr, progress)
    tables = {"metrics": out.metrics, "drift": out.drift, "lipschitz": out.lipschitz}
    for table in tables.values():  # appended: metrics keeps its contract columns first
        table["part"] = part
        table["seed"] = int(seed)
    model = {
        "variant": variant,
        "part": part,
        "seed": int(seed),
        "config": cfg,
        "device": out.device,
        "state": out.state,
    }
    return {**tables, "model": model}


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: one row per variant, part and seed: final accuracies, largest gap, speed,
    Lipschitz bounds (largest over classes: measured lower, structural upper, their ratio), drift."""
    metrics, drift, lipschitz = (tables[k] for k in TABLES)
    rows = []
    for (variant, part, seed), m in metrics.groupby(KEYS, sort=False):
        m = m.sort_values("epoch")
        last = m.iloc[-1]
        mine = {"variant": variant, "part": part, "seed": seed}
        d = drift.loc[(drift[KEYS] == pd.Series(mine)).all(axis=1)]
        d = d[d["epoch"] == d["epoch"].max()]
        lip = lipschitz.loc[(lipschitz[KEYS] == pd.Series(mine)).all(axis=1)]
        row = {
            **mine,
            "epochs": int(last["epoch"]),
            "status": last.get("status", "ok"),
            "eval_set": last.get("eval_set", "test"),
            "final_train_acc": last["train_acc"],
            "final_test_acc": last["test_acc"],
            "best_test_acc": m["test_acc"].max(),
            "max_abs_gap": (m["train_acc"] - m["test_acc"]).abs().max(),
            "seconds_per_epoch": m["seconds"].mean(),
            "eval_seconds_per_epoch": m["eval_seconds"].mean(),
            "images_per_s": m["images_per_s"].median(),
        }
        for wrt in ("input", "features"):
            lo, hi = lip[f"lipschitz_{wrt}"].max(), lip[f"lipschitz_{wrt}_upper"].max()
            row |= {f"lipschitz_{wrt}": lo, f"lipschitz_{wrt}_upper": hi, f"lipschitz_{wrt}_ratio": hi / lo}
        row |= {
            "bias_drift_rel_median": d["bias_drift_rel"].median(),
            "weight_drift_rel_median": d["weight_drift_rel"].median(),
        }
        rows.append(row)
    return {"summary": pd.DataFrame(rows)}
