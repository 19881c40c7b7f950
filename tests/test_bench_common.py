"""The shared benchmark discipline (bench/common.py): interleaving, spread, load flags."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import common  # noqa: E402


def test_alternate_interleaves_the_contenders_and_reports_their_spread():
    calls = []
    t = common.alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, reps=3)
    assert calls == ["a", "b"] * 4  # one warm-up call each, then A B A B A B
    for timing in t.values():
        assert timing.reps == 3 and timing.min <= timing.median <= timing.max
        assert set(timing.as_dict()) == {"median_s", "min_s", "max_s", "cpu_s", "reps"}


@pytest.mark.parametrize(
    ("load", "threads", "reps", "loaded", "draft"),
    [(0.3, 1, 5, False, False), (1.7, 1, 5, True, True), (1.7, 2, 5, False, False), (0.3, 1, 2, False, True)],
)
def test_a_measurement_above_the_thread_count_or_with_few_repetitions_is_a_draft(
    monkeypatch, tmp_path, load, threads, reps, loaded, draft
):
    monkeypatch.setattr(common.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(common.torch, "set_num_threads", lambda n: None)  # leave the suite's threads
    cond = common.Conditions(threads, reps)
    out = json.loads(common.write_json(tmp_path / "b.json", {"x": 1}, cond).read_text())
    assert out["conditions"]["loaded"] is loaded and out["conditions"]["draft"] is draft
    assert out["conditions"]["threads"] == threads and out["x"] == 1


def test_speedups_are_the_peers_time_over_the_engines():
    assert common.speedups({"engine": 2.0, "loop": 10.0, "vmap": 1.0}, "engine") == {
        "speedup_vs_peer_loop": 5.0,
        "speedup_vs_peer_vmap": 0.5,
    }
