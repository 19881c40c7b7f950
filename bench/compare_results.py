"""Compare every table of two results/ folders (a refactor must leave them identical).

    .venv/bin/python bench/compare_results.py BEFORE/results AFTER/results [--rename OLD=NEW ...]

Reads every .parquet and .csv under both folders (shards included; benchmarks and logs not),
drops the columns that
hold measured wall time (and what is computed from it), and reports for each table whether it
is identical, which columns were added or removed, and which differ (with the number of rows
that differ and the largest absolute difference). Rows are compared in order. Exits 1 when a
table present in both differs. `--rename old=new` maps a column renamed on purpose
(`--rename study=experiment`); columns new in AFTER are reported and not counted as a
difference.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Columns that hold measured time or quantities derived from it: they change between two runs
# of the same config.
TIMING = re.compile(
    r"(^|_)(seconds|images_per_s|search_cost_steps|equal_time|jobs_seconds|elapsed_seconds)($|_)|"
    r"^(s|cpu_time|max_rss|end)$"
)


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def tables(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.suffix in (".parquet", ".csv") and "benchmarks" not in p.parts
    }


def differs(a: pd.Series, b: pd.Series) -> tuple[int, float]:
    """(rows that differ, largest absolute difference of the numeric ones)."""
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        with np.errstate(invalid="ignore"):
            diff = np.abs(x - y)[~same]
        finite = diff[np.isfinite(diff)]
        return int((~same).sum()), float(finite.max()) if len(finite) else float("nan")
    same = a.fillna("").astype(str).to_numpy() == b.fillna("").astype(str).to_numpy()
    return int((~same).sum()), float("nan")


def compare(before: Path, after: Path, renames: dict[str, dict[str, str]]) -> int:
    old, new = tables(before), tables(after)
    bad = 0
    for name in sorted(set(old) | set(new)):
        if name not in new or name not in old:
            print(f"{name}: only in {'BEFORE' if name in old else 'AFTER'}")
            continue
        mine = {o: n for prefix, r in renames.items() if name.startswith(prefix) for o, n in r.items()}
        a, b = read(old[name]).rename(columns=mine), read(new[name])
        drop = [c for c in set(a.columns) | set(b.columns) if TIMING.search(c)]
        a, b = a.drop(columns=drop, errors="ignore"), b.drop(columns=drop, errors="ignore")
        added, removed = sorted(set(b) - set(a)), sorted(set(a) - set(b))
        notes = []
        if added:
            notes.append(f"added {added}")
        if removed:
            notes.append(f"REMOVED {removed}")
            bad += 1
        if len(a) != len(b):
            print(f"{name}: ROWS {len(a)} -> {len(b)} {'; '.join(notes)}")
            bad += 1
            continue
        diffs = []
        for col in [c for c in a.columns if c in b.columns]:
            n, big = differs(a[col].reset_index(drop=True), b[col].reset_index(drop=True))
            if n:
                diffs.append(f"{col} ({n} rows, max |diff| {big:.3g})")
        if diffs:
            bad += 1
            notes.append("DIFFERS: " + ", ".join(diffs))
        print(
            f"{name}: {'identical' if not diffs and not removed else 'changed'} ({len(a)} rows)"
            + (f"; {'; '.join(notes)}" if notes else "")
        )
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rename", action="append", default=[], help="old=new: a column renamed on purpose")
    args = ap.parse_args(argv)
    renames: dict[str, dict[str, str]] = {}
    for r in args.rename:
        prefix, _, pair = r.rpartition(":")
        old, new = pair.split("=", 1)
        renames.setdefault(prefix, {})[old] = new
    bad = compare(args.before, args.after, renames)
    print(f"{bad} table(s) differ" if bad else "every table present in both is identical (timing aside)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
