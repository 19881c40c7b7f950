"""Figures of the MNIST study, drawn from the aggregated tables only."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from pipeline.plotting import panel_size


def _variants(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["variant"]))


def accuracy_figure(metrics: pd.DataFrame, figures: dict):
    """Train and test accuracy (%) vs epoch, one panel per variant (the paper's figure)."""
    variants = _variants(metrics)
    fig, axes = plt.subplots(1, len(variants), figsize=panel_size(figures, len(variants)), squeeze=False)
    cfg = figures["mnist"]
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


def gap_figure(metrics: pd.DataFrame, figures: dict):
    """Train minus test accuracy (percentage points) vs epoch, one line per variant."""
    fig, ax = plt.subplots(figsize=panel_size(figures))
    df = metrics.assign(gap_points=100 * (metrics["train_acc"] - metrics["test_acc"]))
    sns.lineplot(data=df, x="epoch", y="gap_points", hue="variant", marker="o", ax=ax)
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set(xlabel="epoch", ylabel="train - test accuracy (points)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def drift_figure(drift: pd.DataFrame, figures: dict):
    """Relative bias drift vs relative weight drift of every network and layer, per variant."""
    epoch = figures["mnist"]["drift_epoch"] or int(drift["epoch"].max())
    epoch = min(epoch, int(drift["epoch"].max()))
    d = drift[drift["epoch"] == epoch]
    variants = _variants(d)
    fig, axes = plt.subplots(1, len(variants), figsize=panel_size(figures, len(variants)), squeeze=False)
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
