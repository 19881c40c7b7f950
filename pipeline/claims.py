"""Verdicts on the claims (docs/claims.md): parts with intervals, and robustness over settings.

A claim is split into parts. Each part is one statistic of the aggregated tables with a 95 %
interval (a seed bootstrap for medians and shares of runs, an exact binomial interval for
counts, a sign test for paired comparisons; `pipeline.stats`), a threshold and the side of the
threshold the claim needs. Its verdict:

- `supported`: the whole interval lies on the claim's side of the threshold;
- `not supported`: the whole interval lies on the other side;
- `inconclusive`: the interval straddles the threshold;
- `not run`: the study was switched off, or its tables cannot answer the part.

`flip_threshold` is the threshold at which the part's verdict would change (the interval end
nearest to the threshold). A claim's verdict combines its parts: not supported if any part
is, not run if every part is, inconclusive if any part is inconclusive or not run, else
supported.

Robustness: each claim is evaluated at its primary setting (the headline verdict) and at
every setting of a declared grid (the values the paper left open: iteration budget, init
width, depth, step size, ...). `settings_supported` of `settings_total` counts where it
holds; a claim supported at its primary setting but in fewer than half of its settings is
`fragile`.

Each study's `claims.py` defines its claims as `Claim` objects (`CLAIMS`); thresholds and the
primary settings are fixed in config (`report.claims`) before looking at the data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module

import numpy as np
import pandas as pd

from pipeline.studies import STUDIES

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN = "supported", "not supported", "inconclusive", "not run"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN)
COLUMNS = [
    "claim_id",
    "part",
    "claim",
    "verdict",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "threshold",
    "side",
    "flip_threshold",
    "settings_supported",
    "settings_total",
    "fragile",
    "timing_dependent",
    "evidence",
]


@dataclass
class Part:
    """One part of a claim: a statistic, its interval, and the threshold the claim needs.

    `side` says where the statistic must lie for the claim: ">" / ">=" above the threshold,
    "<" / "<=" below it. A part built with `verdict=NOT_RUN` carries no numbers. A part whose
    statistic depends on measured wall time (and so may change between reruns of the same
    config) says so with `timing_dependent=True`.
    """

    part: str
    statistic: str
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    threshold: float = math.nan
    side: str = ">"
    evidence: str = ""
    verdict: str = ""
    flip_threshold: float = math.nan
    timing_dependent: bool = False

    def __post_init__(self):
        if not self.verdict:
            self.verdict, self.flip_threshold = judge(self.ci_low, self.ci_high, self.threshold, self.side)
            if self.verdict == NOT_RUN and math.isfinite(self.estimate):
                self.evidence += " (no interval: fewer than two seeds)"


def not_run(part: str, statistic: str, why: str) -> Part:
    return Part(part, statistic, evidence=why, verdict=NOT_RUN)


def judge(low: float, high: float, threshold: float, side: str) -> tuple[str, float]:
    """(verdict, flip threshold) of an interval [low, high] against `threshold`."""
    if not (math.isfinite(low) and math.isfinite(high)) or math.isnan(threshold):
        return NOT_RUN, math.nan
    if side in (">", ">="):
        holds = low > threshold if side == ">" else low >= threshold
        fails = high <= threshold if side == ">" else high < threshold
        near_hold, near_fail = low, high
    elif side in ("<", "<="):
        holds = high < threshold if side == "<" else high <= threshold
        fails = low >= threshold if side == "<" else low > threshold
        near_hold, near_fail = high, low
    else:
        raise ValueError(f"side must be one of >, >=, <, <=, not {side!r}")
    if holds:
        return SUPPORTED, near_hold
    if fails:
        return NOT_SUPPORTED, near_fail
    return INCONCLUSIVE, low if abs(low - threshold) <= abs(high - threshold) else high


def combine(verdicts: list[str]) -> str:
    """A claim's verdict from its parts' verdicts."""
    if NOT_SUPPORTED in verdicts:
        return NOT_SUPPORTED
    if not verdicts or all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    if INCONCLUSIVE in verdicts or NOT_RUN in verdicts:
        return INCONCLUSIVE
    return SUPPORTED


Tables = Mapping[str, "pd.DataFrame | None"]
Setting = dict


@dataclass(frozen=True)
class Claim:
    """A claim, the tables it reads, how it is judged at one setting, and its settings.

    `evaluate(tables, setting, th)` returns the parts at one setting (a dict of grid values,
    e.g. {"delta": 0.005}); `primary(tables, th)` is the setting of the headline verdict and
    `grid(tables, th)` the settings over which robustness is counted ([] for none).
    """

    claim_id: int
    text: str
    tables: tuple[str, ...]
    evaluate: Callable[[Tables, Setting, Mapping], list[Part]]
    primary: Callable[[Tables, Mapping], Setting]
    grid: Callable[[Tables, Mapping], list[Setting]]


def all_claims() -> list[Claim]:
    """Every claim of every study, by claim id."""
    claims = [c for study in STUDIES for c in import_module(study.module("claims")).CLAIMS]
    return sorted(claims, key=lambda c: c.claim_id)


def _row(claim: Claim, part: Part) -> dict:
    return {
        "claim_id": claim.claim_id,
        "part": part.part,
        "claim": claim.text,
        "verdict": part.verdict,
        "statistic": part.statistic,
        "estimate": part.estimate,
        "ci_low": part.ci_low,
        "ci_high": part.ci_high,
        "threshold": part.threshold,
        "side": part.side if math.isfinite(part.threshold) else "",
        "flip_threshold": part.flip_threshold,
        "timing_dependent": part.timing_dependent,
        "evidence": part.evidence,
    }


def evaluate_claim(claim: Claim, tables: Tables, th: Mapping) -> tuple[list[dict], list[dict]]:
    """(rows of claims.csv, rows of the settings table) of one claim."""
    missing = [name for name in claim.tables if tables.get(name) is None or tables[name].empty]
    if missing:
        why = f"no {', '.join(missing)} table: its study is switched off in config or wrote nothing"
        part = not_run("all", "", why)
        return [{**_row(claim, part), "settings_supported": 0, "settings_total": 0, "fragile": False}], []
    parts = claim.evaluate(tables, claim.primary(tables, th), th)
    grid = claim.grid(tables, th)
    cells = []
    for setting in grid:
        cell_parts = claim.evaluate(tables, setting, th)
        verdicts = {p.part: p.verdict for p in cell_parts}
        cells.append(
            {
                "claim_id": claim.claim_id,
                "setting": json.dumps(setting, sort_keys=True, default=str),
                **{f"setting_{k}": str(v) for k, v in setting.items()},
                "verdict": combine(list(verdicts.values())),
                "timing_dependent": any(p.timing_dependent for p in cell_parts),
                **{f"part_{k}": v for k, v in verdicts.items()},
            }
        )
    rows = []
    for part in parts:
        held = sum(c.get(f"part_{part.part}") == SUPPORTED for c in cells)
        rows.append({**_row(claim, part), "settings_supported": held, "settings_total": len(cells)})
    verdict = combine([p.verdict for p in parts])
    held = sum(c["verdict"] == SUPPORTED for c in cells)
    summary = Part(
        "all",
        "every part",
        verdict=verdict,
        evidence="; ".join(f"({p.part}) {p.evidence}" for p in parts),
        timing_dependent=any(p.timing_dependent for p in parts),
    )
    rows.append({**_row(claim, summary), "settings_supported": held, "settings_total": len(cells)})
    for row in rows:
        row["fragile"] = bool(
            row["verdict"] == SUPPORTED and 2 * row["settings_supported"] < row["settings_total"]
        )
    return rows, cells


def check_claims(tables: Tables, thresholds: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claims table with COLUMNS, settings table: the verdict per claim and robustness setting)."""
    rows, cells = [], []
    for claim in all_claims():
        r, c = evaluate_claim(claim, tables, thresholds)
        rows += r
        cells += c
    settings = pd.DataFrame(cells)
    if settings.empty:
        settings = pd.DataFrame(columns=["claim_id", "setting", "verdict", "timing_dependent"])
    return pd.DataFrame(rows, columns=COLUMNS), settings


def select(df: pd.DataFrame, setting: Mapping) -> pd.DataFrame:
    """The rows of `df` matching every key of `setting` that is one of its columns
    (floats compared with np.isclose)."""
    mask = np.ones(len(df), dtype=bool)
    for key, value in setting.items():
        if key in df:
            col = df[key]
            mask &= np.isclose(col, value) if isinstance(value, float) else (col == value).to_numpy()
    return df[mask]


# ------------------------------------------------------------------ evidence formatting ---


def fmt(x: float) -> str:
    """A number for an evidence line: 3 significant digits, 'nan' as such."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}"


def interval(estimate: float, low: float, high: float) -> str:
    return f"{fmt(estimate)} [{fmt(low)}, {fmt(high)}]"


def claims_markdown(claims: pd.DataFrame) -> str:
    """The claims table as Markdown, one row per claim: its verdict, each part's estimate with
    its interval against the threshold, and the robustness count (README's results table)."""
    lines = [
        "| claim | verdict | parts: estimate [95 % interval], what the claim needs | supported at |",
        "| --- | --- | --- | --- |",
    ]
    for claim_id, rows in claims.groupby("claim_id", sort=True):
        summary = rows[rows["part"].eq("all")].iloc[0]
        parts = []
        for p in rows[~rows["part"].eq("all")].itertuples():
            numbers = "" if math.isnan(p.estimate) else f" {interval(p.estimate, p.ci_low, p.ci_high)}"
            versus = "" if math.isnan(p.threshold) else f", needs {p.side} {fmt(p.threshold)}"
            parts.append(f"({p.part}) {p.verdict}{numbers}{versus}")
        verdict = f"**{summary['verdict']}**" + (" (fragile)" if summary["fragile"] else "")
        settings = summary["settings_total"]
        robust = f"{summary['settings_supported']} of {settings} settings" if settings else "no grid"
        lines.append(
            f"| {claim_id}. {summary['claim']} | {verdict} | {'; '.join(parts) or summary['evidence']} "
            f"| {robust} |"
        )
    return "\n".join(lines) + "\n"
