"""The shard contract: what a study's `run_shard(cfg, shard) -> {table: DataFrame}` is given.

One shard is one training job of a study (`pipeline.studies.ShardKind`): its wildcards (digits
as ints), the data files it reads, the paths of its non-table outputs (artifacts such as a
trained model, which `run_shard` writes itself), a scratch folder for checkpoints (kept when a
job fails or is killed, so that the next attempt resumes; removed by `finish` once every
output is written), a log that stamps each line with the seconds since the job began, and a
terminal stream for progress bars (None when not on a terminal).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


class Clock:
    """`log(message)` writes `[  12.3 s] message` to a stream: elapsed seconds since creation."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:8.1f} s] {message}", file=self.stream, flush=True)


@dataclass
class Shard:
    wildcards: Mapping[str, object]
    inputs: Mapping[str, list[Path]] = field(default_factory=dict)
    artifacts: Mapping[str, Path] = field(default_factory=dict)
    scratch: Path | None = None
    log: Clock = field(default_factory=Clock)
    progress: TextIO | None = None

    def __getitem__(self, key: str):
        return self.wildcards[key]

    def finish(self) -> None:
        """Remove the scratch folder, once every output is written."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
