"""What every benchmark shares: one command line, alternating timings, and the JSON it writes.

Every bench takes `--reps` (at least 5 for a result), `--threads` and `--json PATH` (default
`bench/results/<name>.json`, committed, so that measured numbers live in files rather than in
prose), times its contenders in turn (A B A B ..., so all see the same machine load) and
compares medians; min, max and CPU time go beside them, and the load average before and after
with the thread count (a measurement under a load above the thread count is flagged `loaded`
and `draft` in the JSON and the printed summary). Ratios against a peer are written as
`speedup_vs_peer_<peer>`: the peer's median time over the engine's, above 1 when the engine is
faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Repetitions below which a measurement is a draft.
MIN_REPS = 5
sys.path.insert(0, str(REPO))

import torch  # noqa: E402


def mnist_folders(given: str | None) -> list[Path]:
    """Where a bench looks for the four MNIST files, in order: the folder it was given, else
    $MNIST_DIR, else the data stage's output."""
    if given:
        return [Path(given)]
    env = [Path(os.environ["MNIST_DIR"])] if os.environ.get("MNIST_DIR") else []
    return [*env, REPO / "results" / "data" / "MNIST" / "raw"]


def parser(name: str, doc: str, reps: int, threads: int) -> argparse.ArgumentParser:
    """The shared command line: --reps, --threads, --json (plus whatever the bench adds)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument(
        "--reps", type=int, default=max(reps, MIN_REPS), help="timed repetitions of each contender"
    )
    ap.add_argument("--threads", type=int, default=threads, help="torch intra-op threads")
    ap.add_argument("--json", default=str(REPO / "bench" / "results" / f"{name}.json"), help="where to write")
    return ap


@dataclass(frozen=True)
class Timing:
    """One contender's repetitions: wall seconds (median, min, max) and CPU seconds (median)."""

    median: float
    min: float
    max: float
    cpu: float
    reps: int

    def as_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "cpu_s": self.cpu,
            "reps": self.reps,
        }


def alternate(contenders: dict[str, Callable[[], object]], reps: int) -> dict[str, Timing]:
    """Each contender timed in turn (A B C A B C ...) `reps` times after one warm-up call, so
    that every contender sees the same machine load."""
    for fn in contenders.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, fn in contenders.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        name: Timing(statistics.median(w), min(w), max(w), statistics.median(cpu[name]), reps)
        for name, w in wall.items()
    }


class Conditions:
    """The machine's load around a measurement: /proc/loadavg when it starts and when it is
    written, the thread count, and whether the numbers are a draft (a 1-minute load above the
    thread count before or after, or fewer than MIN_REPS repetitions)."""

    def __init__(self, threads: int, reps: int):
        torch.set_num_threads(threads)
        self.threads, self.reps = threads, reps
        self.before = os.getloadavg()

    def as_dict(self) -> dict:
        after = os.getloadavg()
        loaded = max(self.before[0], after[0]) > self.threads
        return {
            "threads": self.threads,
            "reps": self.reps,
            "loadavg_before": list(self.before),
            "loadavg_after": list(after),
            "loaded": loaded,
            "draft": loaded or self.reps < MIN_REPS,
        }


def machine() -> dict:
    """Where the numbers were measured."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        commit = ""
    cpu = platform.processor()
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_json(path: str | Path, results: dict, conditions: Conditions) -> Path:
    """Write `results` with the machine and the load it was measured under; say so when the
    numbers are a draft."""
    cond = conditions.as_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), "conditions": cond, **results}, indent=2) + "\n")
    b, a = cond["loadavg_before"][0], cond["loadavg_after"][0]
    print(f"load {b:.1f} -> {a:.1f} on {cond['threads']} thread(s), {cond['reps']} repetitions")
    if cond["draft"]:
        why = "the load exceeded the thread count" if cond["loaded"] else f"fewer than {MIN_REPS} repetitions"
        print(f"DRAFT: {why}; these numbers are not a result")
    print(f"wrote {path}")
    return path


def matmul_gflops(size: int = 2048, dtype=torch.float32, reps: int = 5) -> float:
    """GFLOP/s of a large square matmul: the machine's practical peak for `dtype`."""
    a = torch.randn(size, size).to(dtype)
    a @ a
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2 * size**3 * reps / (time.perf_counter() - t0) / 1e9


def speedups(seconds: dict[str, float], engine: str) -> dict[str, float]:
    """`speedup_vs_peer_<peer>`: each peer's seconds over the engine's (for the same work)."""
    return {f"speedup_vs_peer_{k}": v / seconds[engine] for k, v in seconds.items() if k != engine}
