"""Figures of the 1-D bias study: pure functions of the aggregated tables and the settings.

Each takes `tables` (by name) and `settings` (the shared figure settings merged with
`figures.bias1d`) and returns a matplotlib Figure; the caller applies the theme and saves it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pipeline.bias1d.summary import METHODS, main_grid
from pipeline.plotting import panel_size, registry

FIGURES, figure = registry()


@figure("fit")
def fit(tables: dict[str, pd.DataFrame], settings: dict):
    """Data points, the target and the estimate of every init interval, one panel per target."""
    runs, estimates, points, truth = (tables[k] for k in ("runs", "estimates", "points", "truth"))
    runs = main_grid(runs)
    points = points[points["noise_std"].eq(runs["noise_std"].iloc[0])] if "noise_std" in points else points
    depth = settings["depth"] if settings["depth"] is not None else int(runs["depth"].min())
    seed = settings["seed"]
    targets = list(dict.fromkeys(runs["target"]))
    intervals = settings["intervals"]
    runs = runs[runs["interval"].isin(intervals) & np.isclose(runs["momentum"], settings["momentum"])]
    colors = dict(zip(intervals, sns.color_palette(n_colors=len(intervals) + 1)[1:], strict=True))
    fig, axes = plt.subplots(1, len(targets), figsize=panel_size(settings, len(targets)), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        t = truth[truth["target"] == target].drop_duplicates("x")  # one copy per shard
        ax.plot(t["x"], t["y"], color="0.3", lw=1.0, ls="--", label="target")
        pts = points[(points["target"] == target) & (points["seed"] == seed)]
        ax.scatter(pts["x"], pts["y"], s=12, color="black", zorder=3, label="data")
        sel = runs[(runs["target"] == target) & (runs["seed"] == seed) & (runs["depth"] == depth)]
        for row in sel.itertuples():
            est = estimates[estimates["run_id"] == row.run_id]
            label = f"{row.interval} [{row.init_low:g}, {row.init_high:g}]: L={row.lipschitz:.2f}"
            ax.plot(est["x"], est["yhat"], color=colors[row.interval], lw=1.6, label=label)
        ax.set_title(
            f"{target} (target L={sel['target_lipschitz'].iloc[0]:.2f}), depth {depth}, seed {seed}, "
            f"momentum {settings['momentum']:g}"
        )
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


@figure("drift")
def drift(tables: dict[str, pd.DataFrame], settings: dict):
    """How far the live layers' kinks moved (median over runs, data spacings) against the
    optimiser's effective time lr / (1 - momentum) x iterations, per bias init interval; dotted:
    how far they started from the nearest target knot. One panel per target (rows) and depth."""
    cells = tables["robustness"]
    targets = list(dict.fromkeys(cells["target"]))
    depths = sorted(cells["depth"].unique())
    fig, axes = plt.subplots(
        len(targets),
        len(depths),
        figsize=panel_size(settings, len(depths), len(targets)),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    intervals = list(dict.fromkeys(cells["interval"]))
    colors = dict(zip(intervals, sns.color_palette(n_colors=len(intervals)), strict=True))
    for i, target in enumerate(targets):
        for j, depth in enumerate(depths):
            ax = axes[i, j]
            d = cells[cells["target"].eq(target) & cells["depth"].eq(depth)]
            d = d.assign(move=d["median_live_kink_drift_spacings"].clip(lower=1e-4)).sort_values(
                "effective_time"
            )
            for interval, e in d.groupby("interval", sort=False):
                ax.plot(
                    e["effective_time"], e["move"], marker="o", ms=3, color=colors[interval], label=interval
                )
                knots = e["median_knot_distance_spacings"].median()
                if np.isfinite(knots):
                    ax.axhline(max(knots, 1e-4), color=colors[interval], lw=0.8, ls=":")
            ax.axhline(1.0, color="0.3", lw=1, ls="--")
            ax.set_xscale("log")
            if settings["log_drift"]:
                ax.set_yscale("log")
            ax.set_title(f"{target}, L = {depth}")
            ax.set_xlabel("effective time lr / (1 - momentum) x iterations")
            ax.set_ylabel("median live kink move (data spacings)")
            if (i, j) == (0, 0):
                ax.legend(fontsize="x-small")
    return fig


@figure("lipschitz")
def lipschitz(tables: dict[str, pd.DataFrame], settings: dict):
    """Estimate's Lipschitz constant over the target's, and final training MSE, per interval."""
    runs = main_grid(tables["runs"])
    ok = runs[(runs["status"] == "ok") & np.isclose(runs["momentum"], settings["momentum"])].copy()
    ok["depth"] = ok["depth"].astype(str)
    fig, axes = plt.subplots(1, 2, figsize=panel_size(settings, 2))
    hue = "target"
    sns.stripplot(data=ok, x="interval", y="lipschitz_ratio", hue=hue, dodge=True, ax=axes[0], size=3)
    axes[0].axhline(1.0, color="0.3", lw=1, ls="--")
    axes[0].set_ylabel("Lipschitz(estimate) / Lipschitz(target)")
    axes[0].set_xlabel("bias init interval")
    floor = max(
        float(ok["final_mse"][ok["final_mse"] > 0].min()) if (ok["final_mse"] > 0).any() else 1e-16, 1e-16
    )
    sns.stripplot(
        data=ok.assign(final_mse=np.maximum(ok["final_mse"], floor)),
        x="interval",
        y="final_mse",
        hue=hue,
        dodge=True,
        ax=axes[1],
        size=3,
        legend=False,
    )
    axes[1].set_yscale("log")
    axes[1].set_ylabel("final training MSE")
    axes[1].set_xlabel("bias init interval")
    fig.tight_layout()
    return fig


@figure("budget")
def budget(tables: dict[str, pd.DataFrame], settings: dict):
    """Share of runs that miss a training point vs the iteration budget, per interval (robustness
    cells; runs that diverged or collapsed left out, as in claim 6)."""
    cells = tables["robustness"]
    momenta = sorted(cells["momentum"].unique())
    depths = sorted(cells["depth"].unique())
    fig, axes = plt.subplots(
        len(momenta),
        len(depths),
        figsize=panel_size(settings, len(depths), len(momenta)),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    for i, momentum in enumerate(momenta):
        for j, depth in enumerate(depths):
            ax = axes[i, j]
            d = cells[(cells["momentum"] == momentum) & (cells["depth"] == depth)]
            sns.lineplot(
                data=d, x="iterations", y="miss_fraction", hue="interval", style="target", marker="o", ax=ax
            )
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"L = {depth}, momentum {momentum:g}")
            ax.set_xlabel("iteration budget")
            ax.set_ylabel("share of runs missing a point")
            if (i, j) != (0, 0) and ax.get_legend():
                ax.get_legend().remove()
    return fig


# ------------------------------------------------------------------ comparison of bias updates ---


def _comparison(runs: pd.DataFrame, settings: dict, interval: bool = True) -> pd.DataFrame:
    """The comparison's runs drawn: the first depth, the figure momentum (else the first), and
    the figure's init interval (`updates_interval`) when `interval`."""
    comp = runs[runs["comparison"]]
    comp = comp[comp["depth"].eq(comp["depth"].min())]
    momenta = sorted(comp["momentum"].unique())
    near = [m for m in momenta if np.isclose(m, settings["momentum"])]
    comp = comp[np.isclose(comp["momentum"], near[0] if near else momenta[0])]
    return comp[comp["interval"].eq(settings["updates_interval"])] if interval else comp


def _colors() -> dict:
    return dict(zip(METHODS, sns.color_palette(n_colors=3)[1:], strict=True))


@figure("updates_loss")
def updates_loss(tables: dict[str, pd.DataFrame], settings: dict):
    """Training MSE vs gradient steps with and without kink searches: median over seeds and
    the band of the middle half, one panel per target (columns) and noise level (rows)."""
    comp = _comparison(tables["runs"], settings)
    prog = tables["progress"].merge(comp[["run_id", "target", "noise_std", "method", "seed"]], on="run_id")
    prog = prog[prog["step"] > 0]
    targets = list(dict.fromkeys(comp["target"]))
    noises = sorted(comp["noise_std"].unique())
    fig, axes = plt.subplots(
        len(noises),
        len(targets),
        figsize=panel_size(settings, len(targets), len(noises)),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for i, noise in enumerate(noises):
        for j, target in enumerate(targets):
            ax = axes[i, j]
            d = prog[prog["target"].eq(target) & prog["noise_std"].eq(noise)]
            sns.lineplot(
                data=d,
                x="step",
                y="mse",
                hue="method",
                hue_order=list(METHODS),
                palette=_colors(),
                estimator="median",
                errorbar=("pi", 50),
                ax=ax,
            )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{target}, noise std {noise:g}, {settings['updates_interval']}")
            ax.set_xlabel("gradient steps")
            ax.set_ylabel("training MSE")
            if (i, j) != (0, 0) and ax.get_legend():
                ax.get_legend().remove()
    return fig


@figure("updates_generalisation")
def updates_generalisation(tables: dict[str, pd.DataFrame], settings: dict):
    """Test error against the true target vs the Lipschitz ratio at the end of training, one
    point per run; colour: method, marker: noise level; one panel per target and interval."""
    comp = _comparison(tables["runs"], settings, interval=False)
    comp = comp[comp["status"].eq("ok")].assign(noise=lambda d: d["noise_std"].map("noise {:g}".format))
    targets = list(dict.fromkeys(comp["target"]))
    intervals = list(dict.fromkeys(comp["interval"]))
    fig, axes = plt.subplots(
        len(intervals),
        len(targets),
        figsize=panel_size(settings, len(targets), len(intervals)),
        squeeze=False,
        layout="constrained",
    )
    for i, interval in enumerate(intervals):
        for j, target in enumerate(targets):
            ax = axes[i, j]
            d = comp[comp["target"].eq(target) & comp["interval"].eq(interval)]
            sns.scatterplot(
                data=d,
                x="lipschitz_ratio",
                y="test_mse",
                hue="method",
                hue_order=list(METHODS),
                palette=_colors(),
                style="noise",
                ax=ax,
            )
            ax.axvline(1.0, color="0.3", lw=1, ls="--")
            ax.set_yscale("log")
            ax.set_title(f"{target}, {interval}, depth {int(comp['depth'].min())}")
            ax.set_xlabel("Lipschitz(estimate) / Lipschitz(target)")
            ax.set_ylabel("test MSE against the true target")
            if (i, j) != (0, 0) and ax.get_legend():
                ax.get_legend().remove()
    return fig


@figure("updates_fit")
def updates_fit(tables: dict[str, pd.DataFrame], settings: dict):
    """One example estimate per method over the data: the figure seed's training points, the
    target and the final estimates with and without kink searches, one panel per target
    (rows) and noise level (columns)."""
    runs, estimates, points, truth = (tables[k] for k in ("runs", "estimates", "points", "truth"))
    comp = _comparison(runs, settings)
    comp = comp[comp["seed"].eq(settings["seed"])]
    targets = list(dict.fromkeys(comp["target"]))
    noises = sorted(comp["noise_std"].unique())
    colors = _colors()
    fig, axes = plt.subplots(
        len(targets),
        len(noises),
        figsize=panel_size(settings, len(noises), len(targets)),
        squeeze=False,
        layout="constrained",
    )
    for i, target in enumerate(targets):
        t = truth[truth["target"].eq(target)].drop_duplicates("x")
        for j, noise in enumerate(noises):
            ax = axes[i, j]
            ax.plot(t["x"], t["y"], color="0.3", lw=1.0, ls="--", label="target")
            pts = points[
                points["target"].eq(target)
                & points["seed"].eq(settings["seed"])
                & points["noise_std"].eq(noise)
            ].drop_duplicates("x")
            ax.scatter(pts["x"], pts["y"], s=12, color="black", zorder=3, label="data")
            sel = comp[comp["target"].eq(target) & comp["noise_std"].eq(noise)]
            for row in sel.itertuples():
                est = estimates[estimates["run_id"] == row.run_id]
                label = f"{row.method}: Lip. ratio {row.lipschitz_ratio:.2f}, test MSE {row.test_mse:.1e}"
                ax.plot(est["x"], est["yhat"], color=colors[row.method], lw=1.6, label=label)
            ax.set_title(
                f"{target}, noise std {noise:g}, {settings['updates_interval']}, "
                f"depth {int(comp['depth'].min())}, seed {settings['seed']}"
            )
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.legend(fontsize="x-small")
    return fig
