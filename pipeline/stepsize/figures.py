"""Figures of the step-size study: pure functions of the aggregated tables and the settings.

Each takes `tables` (the tables named by the figure rule, by name) and `settings` (the shared
figure settings merged with `figures.stepsize`) and returns a matplotlib Figure; the caller
applies the theme and saves it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from pipeline.plotting import panel_size, registry

FIGURES, figure = registry()
# model.RULES and model.STATUSES, not imported: the figure jobs need no torch.
RULES = ("fixed", "curvature", "polyak", "adgd", "armijo")
STATUSES = ("converged", "oscillating", "diverged", "not_converged")
PROBLEM_ORDER = ("scalar", "single", "double")
INIT_ORDER = ("identity", "balanced", "random", "large", "orthogonal", "gaussian")


def _headline(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the figures draw: the factor grid and the curvature rule as stated (lambda_max
    at every iterate); the lagged curvature runs and the published-default baselines are in the
    tables and in claim 8's evidence."""
    keep = (runs["setting"] == "grid") | ((runs["setting"] == "curvature") & (runs["refresh_every"] == 1))
    return runs[keep]


def _problem(runs: pd.DataFrame) -> pd.Series:
    """scalar, single or double: the network the run trains."""
    return np.where(runs["problem"] == "scalar", "scalar", runs["network"])


def _colors(names) -> dict:
    """The same colour for a rule in every figure (the best fixed step in black)."""
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fixed = {r: palette[i % len(palette)] for i, r in enumerate(RULES)} | {"fixed (best)": "k"}
    return {n: fixed[n] for n in names}


@figure("success")
def success(tables: dict[str, pd.DataFrame], settings: dict):
    """Per rule and problem against delta0 / delta_ref: the share of runs that converge among
    the instances where some fixed step converges (top) and among all instances (middle), and
    the median cost of the converged ones relative to their instance's best fixed step
    (bottom). The curvature rule has no delta0: a horizontal line."""
    runs = _headline(tables["runs"]).assign(
        net=lambda d: _problem(d), ok=lambda d: d["status"] == "converged"
    )
    problems = [p for p in PROBLEM_ORDER if p in set(runs["net"])]
    rules = [r for r in RULES if r in set(runs["rule"])]
    colors = _colors(rules)
    fig, axes = plt.subplots(
        3,
        len(problems),
        figsize=panel_size(settings, len(problems), 3),
        squeeze=False,
        sharex=True,
        sharey="row",
        layout="constrained",
    )
    rows = (
        ("converged, where some fixed step converges", "ok", runs[runs["reachable"]], "mean"),
        ("converged, all instances", "ok", runs, "mean"),
        ("cost / best fixed step's (median)", "cost_ratio", runs[runs["reachable"] & runs["ok"]], "median"),
    )
    for j, problem in enumerate(problems):
        for i, (label, column, data, how) in enumerate(rows):
            ax = axes[i, j]
            d = data[data["net"] == problem]
            for rule in rules:
                r = d[d["rule"] == rule]
                if r.empty:
                    continue
                if rule == "curvature":
                    ax.axhline(r[column].agg(how), color=colors[rule], ls="--", label=rule)
                    continue
                value = r.groupby("delta_factor")[column].agg(how)
                ax.plot(value.index, value.values, marker="o", color=colors[rule], label=rule)
            ax.set_xscale("log", base=2)
            if column == "ok":
                ax.set_ylim(-0.03, 1.03)
                ax.set_title(f"{problem} ({d['instance'].nunique()} instances)", fontsize="small")
            else:
                ax.set_yscale("log")
                ax.axhline(1.0, color="k", lw=0.6, ls=":")
            if i == len(rows) - 1:
                ax.set_xlabel(r"$\delta_0 / \delta_{ref}$")
            if j == 0:
                ax.set_ylabel(label, fontsize="small")
    axes[0, 0].legend(fontsize="x-small")
    return fig


def _cost_rows(runs: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Cost to tolerance of each converged run to draw: the best fixed step per instance
    (the oracle), the curvature rule, the other rules at delta0 = factor * delta_ref."""
    conv = runs[runs["status"] == "converged"]
    oracle = conv[conv["rule"] == "fixed"].sort_values("cost").groupby("instance", as_index=False).first()
    oracle = oracle.assign(rule="fixed (best)")
    curv = conv[conv["rule"] == "curvature"]
    rest = conv[(conv["rule"] != "fixed") & (conv["rule"] != "curvature")]
    rest = rest[np.isclose(rest["delta_factor"], factor)]
    fixed = conv[(conv["rule"] == "fixed") & np.isclose(conv["delta_factor"], factor)]
    return pd.concat([oracle, fixed, curv, rest], ignore_index=True)


@figure("cost_depth")
def cost_depth(tables: dict[str, pd.DataFrame], settings: dict):
    """Median cost to tolerance (gradient evaluations + weighted Hessian-vector products and
    loss evaluations) vs depth, log-log, per rule; one panel per problem and start."""
    factor = settings["reference_factor"]
    runs = _headline(tables["runs"]).assign(net=lambda d: _problem(d))
    d = _cost_rows(runs, factor)
    problems = [p for p in PROBLEM_ORDER if p in set(runs["net"])]
    inits = [i for i in INIT_ORDER if i in set(runs["init"])]
    names = ["fixed (best)", "fixed", *[r for r in RULES if r != "fixed"]]
    names = [r for r in names if r in set(d["rule"])]
    colors = _colors(names)
    fig, axes = plt.subplots(
        len(problems),
        len(inits),
        figsize=panel_size(settings, len(inits), len(problems)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for i, problem in enumerate(problems):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            sub = d[(d["net"] == problem) & (d["init"] == init)]
            if not ((runs["net"] == problem) & (runs["init"] == init)).any():
                ax.set_visible(False)
                continue
            for name in names:
                med = sub[sub["rule"] == name].groupby("depth")["cost"].median()
                if len(med):
                    style = dict(ls="--") if name == "fixed" else {}
                    ax.plot(med.index, med.values, marker="o", ms=3, color=colors[name], label=name, **style)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{problem}, {init}", fontsize="small")
            ax.set_xlabel("depth L")
            if j == 0:
                ax.set_ylabel("median cost to tolerance")
    handles = [
        plt.Line2D([], [], color=colors[n], marker="o", ls="--" if n == "fixed" else "-") for n in names
    ]
    labels = [n if n in ("fixed (best)", "curvature") else f"{n} (at {factor:g} delta_ref)" for n in names]
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(names), 6), fontsize="x-small")
    return fig


@figure("basins")
def basins(tables: dict[str, pd.DataFrame], settings: dict):
    """Where each rule converges, oscillates, stalls or diverges from each initial (w1, w2) of
    the scalar network (L = 2; L = 3 on the slice w3 = const), one row per depth and step
    factor, with the manifold of minima w1 w2 (w3) = r."""
    b = tables["basins"]
    statuses = list(STATUSES)
    cmap = ListedColormap([settings["status_colors"][s] for s in statuses])
    code = {s: k for k, s in enumerate(statuses)}
    factors = sorted(b["delta_factor"].dropna().unique())
    depths = sorted(b["depth"].unique())
    rules = [r for r in RULES if r in set(b["rule"])]
    rows = [(L, f) for L in depths for f in factors]
    size = settings["basin_panel"]
    fig, axes = plt.subplots(
        len(rows),
        len(rules),
        figsize=(size * len(rules), size * len(rows)),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    for i, (L, f) in enumerate(rows):
        for j, rule in enumerate(rules):
            ax = axes[i, j]
            d = b[(b["depth"] == L) & (b["rule"] == rule)]
            if rule != "curvature":
                d = d[np.isclose(d["delta_factor"], f)]
            w1, w2 = np.sort(d["w1"].unique()), np.sort(d["w2"].unique())
            grid = (
                d.assign(c=d["status"].map(code))
                .pivot_table(index="w2", columns="w1", values="c", aggfunc="first")
                .reindex(index=w2, columns=w1)
            )
            ax.imshow(
                grid.to_numpy(),
                origin="lower",
                extent=(w1[0], w1[-1], w2[0], w2[-1]),
                cmap=cmap,
                vmin=-0.5,
                vmax=len(statuses) - 0.5,
                interpolation="nearest",
                aspect="auto",
            )
            r = float(d["target"].iloc[0])
            rest = 1.0 if L == 2 else float(np.nanmean(d["w3"])) ** (L - 2)
            for sign in (1, -1):
                x = sign * np.geomspace(abs(r / rest) / w2[-1], w1[-1], 200)
                ax.plot(x, r / (rest * x), color="k", lw=0.6)
            ax.set_xlim(w1[0], w1[-1])
            ax.set_ylim(w2[0], w2[-1])
            label = rule if rule == "curvature" else rf"{rule}, $\delta_0$ = {f:g} $\delta^*$"
            ax.set_title(f"L = {L}: {label}", fontsize="x-small")
            if i == len(rows) - 1:
                ax.set_xlabel("$w_1(0)$")
            if j == 0:
                ax.set_ylabel("$w_2(0)$")
    fig.legend(
        [Patch(color=settings["status_colors"][s]) for s in statuses],
        statuses,
        loc="outside lower center",
        ncols=len(statuses),
        fontsize="small",
    )
    return fig
