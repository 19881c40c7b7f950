"""Figures of the edge study: pure functions of the aggregated tables and the settings.

Each takes `tables` (the tables named by the figure rule, by name) and `settings` (the shared
figure settings merged with `figures.edge`) and returns a matplotlib Figure; the caller applies
the theme and saves it. No torch: the maps are unpacked with numpy.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch, Rectangle

from pipeline.plotting import panel_size, registry

FIGURES, figure = registry()
REGIMES = ("flow", "edge", "unstable", "stalls")  # model.REGIMES, not imported (no torch here)


def _unpack(data: bytes, n: int) -> np.ndarray:
    """maps.unpack without importing torch."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=n * n).reshape(n, n).astype(bool)


def typical_runs(runs: pd.DataFrame, typical: dict) -> pd.DataFrame:
    """One run per regime from the typical start: the step nearest (in log) the middle of the
    regime's band among that start's steps."""
    d = runs[
        (runs["depth"] == typical["depth"])
        & (runs["init"] == typical["init"])
        & np.isclose(runs["target"], typical["target"])
        & np.isclose(runs["data_scale"], typical["data_scale"])
        & (runs["seed"] == typical["seed"])
    ]
    picks = []
    for regime in REGIMES:
        r = d[d["regime"] == regime]
        if r.empty:
            continue
        logs = np.log(r["delta"].to_numpy())
        middle = 0.5 * (logs.min() + logs.max())
        picks.append(r.iloc[[int(np.argmin(np.abs(logs - middle)))]])
    return pd.concat(picks, ignore_index=True) if picks else d.iloc[:0]


@figure("traces")
def traces(tables: dict[str, pd.DataFrame], settings: dict):
    """phi(w_t) delta / 2 and the exact sharpness delta / 2 (top) and the loss (bottom) along
    gradient descent for one typical run of each regime."""
    colors = settings["regime_colors"]
    picks = typical_runs(tables["runs"], settings["typical"])
    tr = tables["traces"]
    n = max(len(picks), 1)
    fig, axes = plt.subplots(
        2, n, figsize=panel_size(settings, n, 2), squeeze=False, sharex=True, layout="constrained"
    )
    for j, run in enumerate(picks.itertuples()):
        t = tr[tr["run_id"] == run.run_id].sort_values("step")
        x = t["step"].to_numpy() + 1
        top, bottom = axes[0, j], axes[1, j]
        top.plot(
            x, t["phi_ratio"], color=colors[run.regime], marker="o", ms=3, label=r"$\varphi(w_t)\,\delta/2$"
        )
        top.plot(x, t["sharpness_ratio"], color="k", lw=0.8, ls="--", label=r"$\lambda_{max}(w_t)\,\delta/2$")
        top.axhline(1.0, color="k", lw=0.6, ls=":")
        top.set_xscale("log")
        top.set_yscale("log")
        top.set_title(
            f"{run.regime}: $\\delta\\varphi_0/2$ = {run.delta_phi0:.3g}, {run.status}", fontsize="small"
        )
        bottom.plot(x, np.maximum(t["loss"], 1e-32), color=colors[run.regime])
        bottom.set_yscale("log")
        bottom.set_xlabel("iteration t + 1")
        if j == 0:
            top.set_ylabel(r"sharpness $\times\,\delta/2$")
            bottom.set_ylabel("loss")
            top.legend(fontsize="x-small")
    ty = settings["typical"]
    fig.suptitle(
        f"L = {ty['depth']}, {ty['init']} start, r = {ty['target']:g}, s = {ty['data_scale']:g}, "
        f"seed {ty['seed']}",
        fontsize="small",
    )
    return fig


@figure("final_sharpness")
def final_sharpness(tables: dict[str, pd.DataFrame], settings: dict):
    """Per depth: the final sharpness delta / 2 of every converged run against phi(w_0) delta / 2,
    by regime; the diagonal (GD follows the flow) and 1 (the edge, 2 / delta)."""
    runs = tables["runs"]
    conv = runs[runs["status"] == "converged"]
    depths = sorted(runs["depth"].unique())
    colors = settings["regime_colors"]
    fig, axes = plt.subplots(
        1,
        len(depths),
        figsize=panel_size(settings, len(depths), 1),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, L in zip(axes[0], depths, strict=True):
        d = conv[conv["depth"] == L]
        for regime in REGIMES:
            r = d[d["regime"] == regime]
            if len(r):
                ax.scatter(
                    r["delta_phi0"],
                    r["final_edge_ratio"],
                    s=6,
                    alpha=0.6,
                    color=colors[regime],
                    label=f"{regime} ({len(r)})",
                )
        lim = np.array([1e-2, 1e2])
        ax.plot(lim, lim, color="k", lw=0.6, ls="--")
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.axvline(1.0, color="k", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"L = {L}: converged {len(d)} of {int((runs['depth'] == L).sum())}", fontsize="small")
        ax.set_xlabel(r"$\varphi(w_0)\,\delta/2$")
        ax.legend(fontsize="x-small", markerscale=2)
    axes[0, 0].set_ylabel(r"final sharpness $\times\,\delta/2$")
    return fig


@figure("maps")
def maps_figure(tables: dict[str, pd.DataFrame], settings: dict):
    """Every trainability map (row: map and depth) and its zooms (columns): bounded runs dark,
    diverged light; each zoom's window outlined on the window before it."""
    w = tables["windows"].sort_values(["map", "depth", "level"])
    rows = list(w[["map", "depth"]].drop_duplicates().itertuples(index=False))
    cols = int(w["level"].max()) + 1
    size = settings["map_panel"]
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(size * cols, size * len(rows)), squeeze=False, layout="constrained"
    )
    for i, (name, L) in enumerate(rows):
        d = w[(w["map"] == name) & (w["depth"] == L)]
        for j in range(cols):
            ax = axes[i, j]
            if j >= len(d):
                ax.set_visible(False)
                continue
            r = d.iloc[j]
            mask = _unpack(r["bounded"], int(r["resolution"]))
            ax.imshow(
                mask,
                origin="lower",
                cmap="Greys",
                vmin=-0.3,
                vmax=1.3,
                interpolation="nearest",
                extent=(r["x_low"], r["x_high"], r["y_low"], r["y_high"]),
                aspect="auto",
            )
            if j + 1 < len(d):
                z = d.iloc[j + 1]
                ax.add_patch(
                    Rectangle(
                        (z["x_low"], z["y_low"]),
                        z["x_high"] - z["x_low"],
                        z["y_high"] - z["y_low"],
                        fill=False,
                        color="#D55E00",
                        lw=1.0,
                    )
                )
            ax.set_title(f"{name}, L = {L}, window {j}: bounded {r['share_bounded']:.2f}", fontsize="x-small")
            ax.set_xlabel(r["x_name"], fontsize="x-small")
            ax.set_ylabel(r["y_name"], fontsize="x-small")
            ax.tick_params(labelsize="xx-small")
    fig.legend(
        [Patch(color="0.2"), Patch(color="0.85")],
        ["bounded", "diverged"],
        loc="outside lower center",
        ncols=2,
        fontsize="small",
    )
    return fig


@figure("box_counting")
def box_counting(tables: dict[str, pd.DataFrame], settings: dict):
    """Box counts N(k) against 1/k (log-log) of every map's boundary per depth and window, with the
    least-squares line whose slope is the dimension."""
    dims = tables["dimension"].sort_values(["map", "depth", "level"])
    names = list(dict.fromkeys(dims["map"]))
    fig, axes = plt.subplots(
        1, len(names), figsize=panel_size(settings, len(names), 1), squeeze=False, layout="constrained"
    )
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], names, strict=True):
        d = dims[dims["map"] == name]
        depths = sorted(d["depth"].unique())
        for r in d.itertuples():
            if not np.isfinite(r.dimension):
                continue
            x, counts = 1.0 / np.asarray(r.box_sizes, float), np.asarray(r.counts, float)
            color = palette[depths.index(r.depth) % len(palette)]
            line = np.exp(np.polyval(np.polyfit(np.log(x), np.log(counts), 1), np.log(x)))
            ax.plot(x, counts, "o", color=color, ms=3)
            ax.plot(
                x,
                line,
                {0: "-", 1: "--"}.get(int(r.level), ":"),
                color=color,
                lw=0.8,
                label=f"L={r.depth} w{r.level}: {r.dimension:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"map {name}", fontsize="small")
        ax.set_xlabel("1 / box size (cells)")
        ax.set_ylabel("boxes holding boundary N(k)")
        ax.legend(fontsize="xx-small")
    return fig


@figure("matrix_sharpness")
def matrix_sharpness(tables: dict[str, pd.DataFrame], settings: dict):
    """The sharpness lambda_max delta / 2 along gradient descent of the matrix networks (one panel
    per network and depth, one colour per relative step, every target), with 1 (= 2 / delta)."""
    runs, series = tables["matrix_runs"], tables["sharpness"]
    cells = list(
        runs[["network", "depth"]].drop_duplicates().sort_values(["network", "depth"]).itertuples(index=False)
    )
    steps = sorted(runs["delta_rel"].unique())
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(
        1,
        len(cells),
        figsize=panel_size(settings, len(cells), 1),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, (network, L) in zip(axes[0], cells, strict=True):
        r = runs[(runs["network"] == network) & (runs["depth"] == L)]
        for k, c in enumerate(steps):
            ids = r.loc[np.isclose(r["delta_rel"], c), "run_id"]
            share = r.loc[np.isclose(r["delta_rel"], c), "near_edge_share"].median()
            for m, run_id in enumerate(ids):
                s = series[series["run_id"] == run_id]
                ax.plot(
                    s["step"],
                    s["edge_ratio"],
                    color=palette[k % len(palette)],
                    lw=0.7,
                    alpha=0.6,
                    label=f"c = {c:g} (near 2/delta: {share:.2f})" if m == 0 else None,
                )
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.set_yscale("log")
        ax.set_title(f"{network}, L = {L}", fontsize="small")
        ax.set_xlabel("iteration")
        ax.legend(fontsize="xx-small")
    axes[0, 0].set_ylabel(r"$\lambda_{max}\,\delta/2$")
    return fig
