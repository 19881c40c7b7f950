"""What every benchmark shares: one command line, alternating timings, and the JSON it writes.

Every bench takes `--reps`, `--threads` and `--json PATH` (default `bench/results/<name>.json`,
committed, so that measured numbers live in files rather than in prose), times its contenders
in turn (so both see the same machine load) and compares medians.
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
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
    ap.add_argument("--reps", type=int, default=reps, help="timed repetitions of each contender")
    ap.add_argument("--threads", type=int, default=threads, help="torch intra-op threads")
    ap.add_argument("--json", default=str(REPO / "bench" / "results" / f"{name}.json"), help="where to write")
    return ap


def alternate(contenders: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median wall seconds of each contender, timed in turn `reps` times after one warm-up call."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


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


def write_json(path: str | Path, results: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
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
