"""Figures of the stability study: pure functions of the aggregated tables and the settings.

Each takes `tables` (the tables named by the figure rule, by name) and `settings` (the shared
figure settings merged with `figures.stability`) and returns a matplotlib Figure; the caller
applies the theme and saves it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.linear import theory
from pipeline.linear.status import STATUSES
from pipeline.plotting import panel_size, registry

STATUS_ORDER = list(STATUSES)
FIGURES, figure = registry()


@figure("phase_diagram")
def phase_diagram(tables: dict[str, pd.DataFrame], settings: dict):
    """Fraction of converged runs over (depth, delta), one panel per init and target, with delta*_L."""
    runs = tables["runs"]
    inits = [i for i in ("balanced", "identity", "random") if i in set(runs["init"])]
    targets = sorted(runs["target"].unique())
    frac = (
        runs.assign(conv=runs["status"] == "converged")
        .groupby(["init", "target", "depth", "delta"], as_index=False)["conv"]
        .mean()
    )
    fig, axes = plt.subplots(
        len(targets),
        len(inits),
        figsize=panel_size(settings, len(inits), len(targets)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    s_mean = float(runs["data_scale"].mean())
    depths = np.sort(runs["depth"].unique())
    Ls = np.linspace(depths.min(), depths.max(), 200)
    for i, r in enumerate(targets):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            d = frac[(frac["init"] == init) & (frac["target"] == r)]
            sc = ax.scatter(
                d["depth"],
                d["delta"],
                c=d["conv"],
                cmap=settings["cmap"],
                vmin=0,
                vmax=1,
                marker="s",
                s=settings["marker_size"],
            )
            ax.plot(Ls, theory.delta_star(Ls, r, s_mean), color="k", lw=1.2, label=r"$\delta^*_L$")
            ax.set_yscale("log")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{init} init, r = {r:g}")
            ax.set_xlabel("depth L")
            if j == 0:
                ax.set_ylabel(r"step size $\delta$")
            if i == 0 and j == 0:
                ax.legend(loc="upper right")
    fig.colorbar(sc, ax=axes, label="fraction converged", shrink=0.8)
    return fig


@figure("sharpness")
def sharpness(tables: dict[str, pd.DataFrame], settings: dict):
    """Sharpness at the end vs 2/delta per init: converged runs must lie on or below the line."""
    runs = tables["runs"]
    inits = [i for i in ("balanced", "identity", "random") if i in set(runs["init"])]
    d = runs[runs["status"] != "diverged"]
    fig, axes = plt.subplots(
        1,
        len(inits),
        figsize=panel_size(settings, len(inits)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    lo, hi = float(d["two_over_delta"].min()), float(d["two_over_delta"].max())
    for ax, init in zip(axes[0], inits, strict=True):
        sub = d[d["init"] == init]
        sns.scatterplot(
            data=sub,
            x="two_over_delta",
            y="sharpness",
            hue="status",
            hue_order=[s for s in STATUS_ORDER if s in set(d["status"])],
            alpha=settings["alpha"],
            s=12,
            linewidth=0,
            ax=ax,
        )
        ax.plot([lo, hi], [lo, hi], color="k", lw=1, label=r"$\lambda_{max} = 2/\delta$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$2/\delta$")
        ax.set_ylabel(r"sharpness $\lambda_{max}(H)$ at the end")
        ax.set_title(f"{init} init")
        ax.legend(fontsize="x-small")
    return fig


@figure("depth")
def depth(tables: dict[str, pd.DataFrame], settings: dict):
    """Final training loss vs depth, one line per init, "
    "median with inter-quartile band, one panel per step setting."""
    runs = tables["runs"]
    floor = settings["loss_floor"]
    final = runs["final_loss"].where(runs["status"] != "diverged", np.inf)
    d = runs.assign(final_loss=final.clip(lower=floor, upper=1e3), step=_step_labels(runs))  # diverged at 1e3
    steps = list(dict.fromkeys(d.sort_values(["delta_rel", "delta"], na_position="first")["step"]))
    fig, axes = plt.subplots(
        1,
        len(steps),
        figsize=panel_size(settings, len(steps)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, step in zip(axes[0], steps, strict=True):
        sub = d[d["step"] == step]
        sns.lineplot(
            data=sub,
            x="depth",
            y="final_loss",
            hue="init",
            estimator="median",
            errorbar=("pi", 50),
            marker="o",
            ax=ax,
            legend=ax is axes[0][0],
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{step}, {int(sub['iterations'].iloc[0])} iterations")
        ax.set_xlabel("depth L")
        ax.set_ylabel(f"final training loss (floor {floor:g}, diverged at 1e3)")
    return fig


def _step_labels(runs: pd.DataFrame) -> pd.Series:
    """Each depth run's step setting as a panel title: the absolute step, or the factor c of
    the steps c * delta_T1(L, rho) scaled per depth and target (column delta_rel)."""
    absolute = runs["delta"].map(lambda x: rf"$\delta$ = {x:g}")
    relative = runs["delta_rel"].map(lambda c: rf"$\delta$ = {c:g} $\delta_{{T1}}(L, \rho)$")
    return absolute.where(runs["delta_rel"].isna(), relative)


@figure("depth_region")
def depth_region(tables: dict[str, pd.DataFrame], settings: dict):
    """Share of runs reaching the loss floor over the grid of (depth, absolute delta), one
    panel per init (the steps scaled per depth and target are in the depth figure)."""
    runs = tables["runs"][tables["runs"]["delta_rel"].isna()]
    reached = runs.assign(
        reached=(runs["final_loss"] <= settings["region_loss"]) & (runs["status"] != "diverged")
    )
    share = reached.groupby(["init", "depth", "delta"], as_index=False)["reached"].mean()
    inits = list(dict.fromkeys(runs["init"]))
    fig, axes = plt.subplots(
        1,
        len(inits),
        figsize=panel_size(settings, len(inits)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, init in zip(axes[0], inits, strict=True):
        sub = share[share["init"] == init]
        sc = ax.scatter(
            sub["depth"],
            sub["delta"],
            c=sub["reached"],
            cmap=settings["cmap"],
            vmin=0,
            vmax=1,
            marker="s",
            s=4 * settings["marker_size"],
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{init} init")
        ax.set_xlabel("depth L")
        ax.set_ylabel(r"step size $\delta$")
    fig.colorbar(sc, ax=axes, label=f"share with final loss <= {settings['region_loss']:g}", shrink=0.8)
    return fig


@figure("single_vs_double")
def single_vs_double(tables: dict[str, pd.DataFrame], settings: dict):
    """Typical pair of loss curves, median/IQR over matrices, divergence fraction vs delta_rel."""
    runs, curves = tables["runs"], tables["curves"]
    cfg = settings["typical"]
    pick = runs[
        (runs["regime"] == cfg["regime"])
        & (runs["depth"] == cfg["depth"])
        & np.isclose(runs["delta_rel"], cfg["delta_rel"])
    ]
    fig, axes = plt.subplots(1, 3, figsize=panel_size(settings, 3), layout="constrained")
    floor = settings["loss_floor"]
    c = curves.merge(pick[["run_id", "network", "seed"]], on="run_id")
    c["loss"] = c["loss"].clip(lower=floor)
    seed = cfg["seed"]
    one = c[c["seed"] == seed]
    sns.lineplot(data=one, x="step", y="loss", hue="network", hue_order=["single", "double"], ax=axes[0])
    axes[0].set_title(f"typical pair: {cfg['regime']}, L = {cfg['depth']}, seed {seed}")
    sns.lineplot(
        data=c,
        x="step",
        y="loss",
        hue="network",
        hue_order=["single", "double"],
        estimator="median",
        errorbar=("pi", 50),
        ax=axes[1],
    )
    axes[1].set_title(f"median and IQR over {pick['seed'].nunique()} matrices")
    for ax in axes[:2]:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
    rel = runs[runs["delta_rel"].notna()]
    div = (
        rel.assign(diverged=rel["status"] == "diverged")
        .groupby(["regime", "network", "delta_rel"], as_index=False)["diverged"]
        .mean()
    )
    sns.lineplot(
        data=div,
        x="delta_rel",
        y="diverged",
        hue="network",
        hue_order=["single", "double"],
        style="regime",
        marker="o",
        ax=axes[2],
    )
    axes[2].set_xscale("log")
    axes[2].set_ylim(-0.03, 1.03)
    axes[2].set_xlabel(r"$c$ in $\delta = c / (L \max(1,\sigma_{max})^{2(L-1)/L})$")
    axes[2].set_ylabel("fraction diverged (all depths)")
    return fig
