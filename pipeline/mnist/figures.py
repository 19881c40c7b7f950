"""Figures of the MNIST study: pure functions of the aggregated tables and the settings.

Each takes `tables` (by name; each table holds every variant, part and seed) and `settings`
(the shared figure settings merged with `figures.mnist`) and returns a matplotlib Figure; the
caller applies the theme and saves it. Runs are grouped by part (`part` column; tables
without one are one part) and variant; seeds are averaged, with their range drawn around.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from pipeline.plotting import panel_size, registry

FIGURES, figure = registry()


def _with_part(df: pd.DataFrame) -> pd.DataFrame:
    return df if "part" in df else df.assign(part="")


def _panels(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(part, variant) of every panel, parts in order of appearance, then variants."""
    return list(dict.fromkeys(zip(df["part"], df["variant"], strict=True)))


def _title(part: str, variant: str) -> str:
    return f"{part}: {variant}" if part else variant


def _eval_label(df: pd.DataFrame) -> str:
    sets = sorted(set(df["eval_set"])) if "eval_set" in df else ["test"]
    return " / ".join(sets)


@figure("accuracy")
def accuracy(tables: dict[str, pd.DataFrame], settings: dict):
    """Train and test (or validation) accuracy (%) vs epoch, one panel per part and variant:
    the mean over seeds, with the range over seeds shaded (the paper's figure)."""
    metrics = _with_part(tables["metrics"])
    panels = _panels(metrics)
    fig, axes = plt.subplots(1, len(panels), figsize=panel_size(settings, len(panels)), squeeze=False)
    lows = []
    for ax, (part, variant) in zip(axes[0], panels, strict=True):
        m = metrics[(metrics["part"] == part) & (metrics["variant"] == variant)]
        n_seeds = m["seed"].nunique() if "seed" in m else 1
        for col, color, marker, label in (
            ("train_acc", settings["train_color"], "o", "train"),
            ("test_acc", settings["test_color"], "s", _eval_label(m)),
        ):
            by = (100 * m[col]).groupby(m["epoch"]).agg(["mean", "min", "max"])
            ax.plot(by.index, by["mean"], marker=marker, ms=3, color=color, label=label)
            if n_seeds > 1:
                ax.fill_between(by.index, by["min"], by["max"], color=color, alpha=0.2, lw=0)
            lows.append(by["min"].min())
        ax.set(title=f"{_title(part, variant)} ({n_seeds} seed{'s' * (n_seeds > 1)})", xlabel="epoch")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(loc="lower right")
    for ax in axes[0]:
        ax.set_ylim(max(0.0, min(lows) - 2), 100.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


@figure("gap")
def gap(tables: dict[str, pd.DataFrame], settings: dict):
    """Train minus test accuracy (percentage points) vs epoch, one line per variant and part:
    the mean over seeds, with the range over seeds shaded."""
    metrics = _with_part(tables["metrics"])
    fig, ax = plt.subplots(figsize=panel_size(settings))
    df = metrics.assign(gap_points=100 * (metrics["train_acc"] - metrics["test_acc"]))
    style = "part" if df["part"].nunique() > 1 else None
    sns.lineplot(
        data=df,
        x="epoch",
        y="gap_points",
        hue="variant",
        style=style,
        marker="o",
        errorbar=("pi", 100),
        ax=ax,
    )
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set(xlabel="epoch", ylabel=f"train - {_eval_label(df)} accuracy (points)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


@figure("drift")
def drift(tables: dict[str, pd.DataFrame], settings: dict):
    """Relative bias drift vs relative weight drift of every network and layer, one panel per
    part and variant (its smallest seed)."""
    drift = _with_part(tables["drift"])
    panels = _panels(drift)
    fig, axes = plt.subplots(1, len(panels), figsize=panel_size(settings, len(panels)), squeeze=False)
    for ax, (part, variant) in zip(axes[0], panels, strict=True):
        v = drift[(drift["part"] == part) & (drift["variant"] == variant)]
        if "seed" in v:
            v = v[v["seed"] == v["seed"].min()]
        epoch = settings["drift_epoch"] or int(v["epoch"].max())
        v = v[v["epoch"] == epoch]
        sns.scatterplot(
            data=v, x="weight_drift_rel", y="bias_drift_rel", hue="layer", palette="viridis", s=14, ax=ax
        )
        lo = np.nanmin(np.r_[v["weight_drift_rel"], v["bias_drift_rel"]].clip(1e-8))
        hi = np.nanmax(np.r_[v["weight_drift_rel"], v["bias_drift_rel"]])
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--")
        ax.set(xscale="log", yscale="log", title=f"{_title(part, variant)}, epoch {epoch}")
        ax.set(xlabel="||V - V0||_F / ||V0||_F", ylabel="||b - b0|| / ||b0||")
    fig.tight_layout()
    return fig
