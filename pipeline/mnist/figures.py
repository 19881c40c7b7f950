"""Figures of the MNIST study: pure functions of the aggregated tables and the settings.

Each takes `tables` (by name; each table holds every variant) and `settings` (the shared
figure settings merged with `figures.mnist`) and returns a matplotlib Figure; the caller
applies the theme and saves it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from pipeline.plotting import panel_size, registry

FIGURES, figure = registry()


def _variants(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["variant"]))


@figure("accuracy")
def accuracy(tables: dict[str, pd.DataFrame], settings: dict):
    """Train and test accuracy (%) vs epoch, one panel per variant (the paper's figure)."""
    metrics = tables["metrics"]
    variants = _variants(metrics)
    fig, axes = plt.subplots(1, len(variants), figsize=panel_size(settings, len(variants)), squeeze=False)
    cfg = settings
    lows = []
    for ax, variant in zip(axes[0], variants, strict=True):
        m = metrics[metrics["variant"] == variant].sort_values("epoch")
        ax.plot(m["epoch"], 100 * m["train_acc"], marker="o", ms=3, color=cfg["train_color"], label="train")
        ax.plot(m["epoch"], 100 * m["test_acc"], marker="s", ms=3, color=cfg["test_color"], label="test")
        lows.append(100 * min(m["train_acc"].min(), m["test_acc"].min()))
        ax.set(title=variant, xlabel="epoch")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(loc="lower right")
    for ax in axes[0]:
        ax.set_ylim(max(0.0, min(lows) - 2), 100.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


@figure("gap")
def gap(tables: dict[str, pd.DataFrame], settings: dict):
    """Train minus test accuracy (percentage points) vs epoch, one line per variant."""
    metrics = tables["metrics"]
    fig, ax = plt.subplots(figsize=panel_size(settings))
    df = metrics.assign(gap_points=100 * (metrics["train_acc"] - metrics["test_acc"]))
    sns.lineplot(data=df, x="epoch", y="gap_points", hue="variant", marker="o", ax=ax)
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set(xlabel="epoch", ylabel="train - test accuracy (points)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


@figure("drift")
def drift(tables: dict[str, pd.DataFrame], settings: dict):
    """Relative bias drift vs relative weight drift of every network and layer, per variant."""
    drift = tables["drift"]
    epoch = settings["drift_epoch"] or int(drift["epoch"].max())
    d = drift[drift["epoch"] == epoch]
    variants = _variants(d)
    fig, axes = plt.subplots(1, len(variants), figsize=panel_size(settings, len(variants)), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        v = d[d["variant"] == variant]
        sns.scatterplot(
            data=v, x="weight_drift_rel", y="bias_drift_rel", hue="layer", palette="viridis", s=14, ax=ax
        )
        lo = np.nanmin(np.r_[v["weight_drift_rel"], v["bias_drift_rel"]].clip(1e-8))
        hi = np.nanmax(np.r_[v["weight_drift_rel"], v["bias_drift_rel"]])
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--")
        ax.set(xscale="log", yscale="log", title=f"{variant}, epoch {epoch}")
        ax.set(xlabel="||V - V0||_F / ||V0||_F", ylabel="||b - b0|| / ||b0||")
    fig.tight_layout()
    return fig
