"""The MNIST study (docs/science.md section 5): config slice -> one trained model -> tables.

A shard is one model variant trained from one seed: `run_shard(cfg, variant, seed, data_dir,
checkpoint_dir)` loads the data stage's files, trains (resuming from the checkpoint when one
of the same settings exists) and returns the tables `metrics` (one row per epoch), `drift`
(per epoch, network and layer) and `lipschitz`, each with `variant` and `seed` columns, and
the final model state as `model`. `summary` gives one row per variant and seed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from pipeline.data import load_mnist
from pipeline.mnist.train import train

TABLES = ("metrics", "drift", "lipschitz")


def run_shard(
    cfg: dict,
    variant: str,
    seed: int,
    data_dir: str | Path,
    checkpoint_dir: str | Path,
    log=None,
    progress=None,
) -> dict:
    """Train one variant from one seed; the tables of TABLES and `model` (see the module docstring).

    `log` receives one line per epoch (default: stderr); `progress`, if given, progress bars.
    The checkpoint is removed by `finish(checkpoint_dir)` once the caller has written the outputs.
    """
    cfg = {**cfg, "seed": int(seed)}
    out = train(cfg, variant, load_mnist(data_dir), checkpoint_dir, log or sys.stderr, progress)
    tables = {"metrics": out.metrics, "drift": out.drift, "lipschitz": out.lipschitz}
    for table in tables.values():
        table["seed"] = int(seed)
    model = {"variant": variant, "seed": int(seed), "config": cfg, "device": out.device, "state": out.state}
    return {**tables, "model": model}


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`summary`: one row per variant and seed: final accuracies, largest gap, speed, Lipschitz, drift."""
    metrics, drift, lipschitz = (tables[k] for k in TABLES)
    rows = []
    for (variant, seed), m in metrics.groupby(["variant", "seed"], sort=False):
        m = m.sort_values("epoch")
        last = m.iloc[-1]
        d = drift[(drift["variant"] == variant) & (drift["seed"] == seed)]
        d = d[d["epoch"] == d["epoch"].max()]
        lip = lipschitz[(lipschitz["variant"] == variant) & (lipschitz["seed"] == seed)].iloc[0]
        rows.append(
            {
                "variant": variant,
                "seed": seed,
                "epochs": int(last["epoch"]),
                "status": last.get("status", "ok"),
                "final_train_acc": last["train_acc"],
                "final_test_acc": last["test_acc"],
                "best_test_acc": m["test_acc"].max(),
                "max_abs_gap": (m["train_acc"] - m["test_acc"]).abs().max(),
                "seconds_per_epoch": m["seconds"].mean(),
                "images_per_s": m["images_per_s"].median(),
                "lipschitz_input": lip["lipschitz_input"],
                "lipschitz_features": lip["lipschitz_features"],
                "bias_drift_rel_median": d["bias_drift_rel"].median(),
                "weight_drift_rel_median": d["weight_drift_rel"].median(),
            }
        )
    return {"summary": pd.DataFrame(rows)}
