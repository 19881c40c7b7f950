"""The MNIST study's aggregate step: `summary(tables)` (no torch)."""

from __future__ import annotations

import pandas as pd

TABLES = ("metrics", "drift", "lipschitz")
KEYS = ["variant", "part", "seed"]


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
