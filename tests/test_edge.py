"""The edge study (pipeline.edge.study, maps, matrix, claims): the map kernel against the full
model, batching, zooms, the step grid and regimes, the matrix sharpness series on the shared
engine, claims 10-11 with their controls, config errors, and the smoke run's outputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, evaluate_claim
from pipeline.config import load_config
from pipeline.edge import claims as ec
from pipeline.edge import fractal as fr
from pipeline.edge import maps as mp
from pipeline.edge import matrix as mx
from pipeline.edge import model as em
from pipeline.edge import study as es
from pipeline.errors import UserError
from pipeline.linear.descent import gradient_descent
from pipeline.linear.lanczos import sharpness
from pipeline.linear.status import Monitoring
from tests.helpers import small_config

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


# ------------------------------------------------------------------------ map kernel ----


@pytest.mark.parametrize("others", [0, 1, 3])
def test_grouped_descent_matches_the_full_model(others):
    """Equal weights stay equal: the three-number kernel is the full L-weight descent."""
    L = others + 2
    rng = np.random.default_rng(others)
    w1, w2 = 1 + rng.uniform(-0.6, 0.6, 60), 1 + rng.uniform(-0.6, 0.6, 60)
    v = np.ones(60)
    ds = float(em.delta_star(L, 1.0))
    delta = np.concatenate([np.full(30, 0.3 * ds), np.full(30, 3.0 * ds)])  # converge / diverge
    ok, step, conv = mp.grouped_descent(w1, w2, v, others, 1.0, 1.0, delta, 300, 1e12, 1e-20)
    full = em.gd_trace(
        torch.as_tensor(mp.full_weights(w1, w2, v, others)),
        1.0,
        1.0,
        torch.as_tensor(delta),
        300,
        [0],
        blowup=1e12,
        tol=1e-20,
        tol_window=1,
    )
    assert np.array_equal(ok, full.status != "diverged")
    assert np.array_equal(step[~ok], full.stopped_step[~ok]) and (step[ok] == -1).all()
    assert np.array_equal(conv, full.status == "converged")
    assert ok[:30].all() and (~ok[30:]).sum() > 20


def test_grouped_descent_does_not_depend_on_the_chunk():
    rng = np.random.default_rng(1)
    w1, w2, v = rng.uniform(-2, 2, 500), rng.uniform(-2, 2, 500), np.full(500, 1.0)
    delta = rng.uniform(0.05, 1.0, 500)
    whole = mp.grouped_descent(w1, w2, v, 2, 1.0, 0.5, delta, 200, 1e12, 1e-20, chunk=10**6)
    for chunk in (1, 7, 64):
        parts = mp.grouped_descent(w1, w2, v, 2, 1.0, 0.5, delta, 200, 1e12, 1e-20, chunk=chunk)
        assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))
    assert whole[0].any() and not whole[0].all()


def test_zoom_windows_are_centred_on_boundary_cells():
    mask = np.zeros((9, 9), dtype=bool)
    mask[:, :4] = True  # boundary: columns 3 and 4
    assert mp.nearest_boundary_cell(mask, (1.0, 0.0)) == (0, 4)
    assert mp.nearest_boundary_cell(mask, (0.0, 1.0)) == (8, 3)
    assert mp.nearest_boundary_cell(np.ones((4, 4), dtype=bool), (0.5, 0.5)) is None
    w = mp.Window(0, 0.0, 8.0, -4.0, 4.0)
    z = w.zoom((2, 6), 9, 4.0)
    assert (z.level, z.x_low, z.x_high, z.y_low, z.y_high) == (1, 5.0, 7.0, -3.0, -1.0)
    block = {"target": 1.0, "data_scale": 1.0, "delta_factor": [0.25, 2.0], "a": [-1.0, 1.0]}
    out = mp.run_map("delta_a", block, 3, 32, 100, 1e12, 1e-20, 2, 4.0, (0.5, 0.75), 256)
    assert [w.level for w, *_ in out] == [0, 1, 2]
    for (w0, ok0, *_), (w1, *_) in zip(out, out[1:], strict=False):
        x, y = w0.axes(32)
        cx, cy = (w1.x_low + w1.x_high) / 2, (w1.y_low + w1.y_high) / 2
        j, i = int(np.argmin(abs(x - cx))), int(np.argmin(abs(y - cy)))
        assert fr.boundary(ok0)[i, j]  # the zoom's centre is a boundary cell
        assert (w1.x_high - w1.x_low) == pytest.approx((w0.x_high - w0.x_low) / 4)
    bits = mp.pack(out[0][1])
    assert np.array_equal(mp.unpack(bits, 32, 32), out[0][1])


# ------------------------------------------------------------------ scalar grid ----


def test_step_grid_fills_all_three_regimes_and_labels_hand_made_starts():
    cfg = small_config()["edge"]
    cfg = {
        **cfg,
        "scalar": {**cfg["scalar"], "inits": ["identity", "random"], "targets": [-0.5, 2.0], "seeds": 1},
    }
    runs, W0 = es.scalar_runs(cfg, 3)
    assert W0.shape == (len(runs), 3)
    regimes = runs.assign(regime=em.regime(runs["phi0"], runs["delta"], runs["delta_star"]))
    by = regimes.groupby(["init", "target"])["regime"].agg(set)
    assert by[("random", 2.0)] == {"flow", "edge", "unstable"}
    assert by[("identity", 2.0)] == {"flow", "unstable"}  # the balanced minimum: 2 / phi0 = delta*
    assert by[("identity", -0.5)] == {"stalls"}  # three equal weights, sign(P) != sign(r)
    r = regimes[(regimes["init"] == "random") & (regimes["target"] == 2.0)]
    assert r["delta"].min() == pytest.approx(0.1 / r["phi0"].iloc[0])
    assert r["delta"].max() == pytest.approx(1.5 * r["delta_star"].iloc[0])
    assert not runs.loc[runs["target"] < 0, "same_sign"].any() or (runs["init"] != "identity").any()
    assert runs["run_id"].is_unique


def test_scalar_shard_is_deterministic_and_counts_comparisons():
    cfg = small_config()["edge"]
    cfg = {**cfg, "scalar": {**cfg["scalar"], "inits": ["random"], "targets": [2.0], "iterations": 60}}
    a = es.run_scalar(cfg, 2, lambda m: None)
    b = es.run_scalar(cfg, 2, lambda m: None)
    pd.testing.assert_frame_equal(a["runs"], b["runs"])
    runs = a["runs"]
    alive = runs["status"] != "diverged"
    assert (runs.loc[alive, "phi_comparisons"] == 60).all()
    assert (runs["phi_increases"] <= runs["phi_comparisons"]).all()
    assert set(a["traces"]["run_id"]) <= set(runs.loc[runs["seed"] == 0, "run_id"])


# ------------------------------------------------------------------ matrix series ----


def test_sharpness_series_equals_one_descent_and_lanczos_at_the_start():
    gen = torch.Generator().manual_seed(0)
    B, n, L = 4, 3, 2
    R = torch.stack([torch.diag(torch.rand(n, dtype=F64, generator=gen) + 0.5) for _ in range(B)])
    chains = [[torch.eye(n, dtype=F64).expand(B, n, n).clone() for _ in range(L)]]
    delta = np.array([0.1, 0.3, 0.5, 3.0])
    mon = Monitoring(tol=1e-20, tol_window=10, blowup=1e12, osc_window=10)
    start = torch.randn(B, L * n * n, dtype=F64, generator=gen)
    se = mx.sharpness_series(
        R, chains, [1], delta, 60, 10, mon, first_iters=18, iters=18, warm_noise=0.1, start=start
    )
    one = gradient_descent(R, chains, [1], torch.as_tensor(delta), 60, mon)
    alive = se.status != "diverged"
    assert alive[:3].all() and not alive[3]
    for a, b in zip(se.chains[0], one.chains[0], strict=True):
        assert torch.equal(a[:3], b[:3])  # segments are the same arithmetic as one call
    assert np.array_equal(se.final_loss[:3], one.final_loss[:3])
    ref, _ = sharpness(R, chains, [1], iters=18, gen=torch.Generator().manual_seed(1))
    assert np.allclose(se.sharpness[0], ref, rtol=1e-10)  # 18 >= D: exact
    assert np.isnan(se.sharpness[-1, 3]) and np.isfinite(se.diverged_step[3])
    share = mx.near_edge_share(
        np.array([[1.0, 1.0], [1.9, np.nan], [2.0, np.nan]]), np.array([1.0, 1.0]), 0.1
    )
    assert share[0] == pytest.approx(2 / 3) and share[1] == 0.0


# ------------------------------------------------------------------ claims 10-11 ----

TH = small_config()["report"]["claims"]


def runs_table(n=400, rises=0, hyp=True, edge_ratio=0.97, flow_ratio=1.0):
    """A constructed runs table: n converged flow runs and n converged edge runs (200 steps each)."""
    half = {
        "regime": ["flow"] * n + ["edge"] * n,
        "status": "converged",
        "hypotheses": hyp,
        "phi_increases": 0,
        "phi_comparisons": 200,
        "final_sharpness": 1.0,
        "final_edge_ratio": [0.5] * n + [edge_ratio] * n,
        "final_flow_ratio": [flow_ratio] * n + [0.9] * n,
        "depth": 2,
    }
    df = pd.DataFrame(half)
    df.loc[: rises - 1, "phi_increases"] = 50
    return df


def parts(claim, tables):
    rows, _ = evaluate_claim(claim, tables, TH)
    return {r["part"]: r["verdict"] for r in rows}


def test_claim10_controls():
    c10 = ec.CLAIMS[0]
    good = pd.concat([runs_table(hyp=True), runs_table(hyp=False)], ignore_index=True)
    v = parts(c10, {"edge/runs": good})
    assert v == {"a": SUPPORTED, "a_outside": SUPPORTED, "b": SUPPORTED, "c": SUPPORTED, "all": SUPPORTED}
    # phi rises at 50 steps of each of 40 runs: 0.0125 of the steps
    rising = pd.concat([runs_table(hyp=True, rises=40), runs_table(hyp=False)], ignore_index=True)
    assert parts(c10, {"edge/runs": rising})["a"] == NOT_SUPPORTED
    outside = pd.concat([runs_table(hyp=True), runs_table(hyp=False, rises=40)], ignore_index=True)
    v = parts(c10, {"edge/runs": outside})
    assert v["a"] == SUPPORTED and v["a_outside"] == NOT_SUPPORTED
    # edge runs ending well below the edge, or above it; flow runs ending off phi(w_0)
    assert parts(c10, {"edge/runs": runs_table(edge_ratio=0.6)})["b"] == NOT_SUPPORTED
    assert parts(c10, {"edge/runs": runs_table(edge_ratio=1.01)})["b"] == NOT_SUPPORTED
    assert parts(c10, {"edge/runs": runs_table(edge_ratio=1 + 1e-9)})["b"] == SUPPORTED  # rounding
    assert parts(c10, {"edge/runs": runs_table(flow_ratio=0.8)})["c"] == NOT_SUPPORTED
    # the same 128 rises among 160,000 steps: spread over 128 runs the share is below 0.001 with
    # the whole interval; all in one run, the bootstrap over runs widens it past 0.001
    spread, lumped = runs_table(), runs_table()
    spread.loc[:127, "phi_increases"] = 1
    lumped.loc[0, "phi_increases"] = 128
    assert parts(c10, {"edge/runs": spread})["a"] == SUPPORTED
    assert parts(c10, {"edge/runs": lumped})["a"] == INCONCLUSIVE
    # diverged runs are not counted in (a), unconverged ones not in (b, c)
    off = runs_table(rises=400).assign(status="diverged")
    assert parts(c10, {"edge/runs": off})["a"] == "not run"


def dimension_rows(values, map_name="delta_a", level=0):
    return pd.DataFrame(
        [
            {
                "map": map_name,
                "depth": L,
                "level": level,
                "dimension": d,
                "ci_low": lo,
                "ci_high": hi,
                "box_sizes": [2, 4, 8, 16],
            }
            for L, (d, lo, hi) in values.items()
        ]
    )


def test_claim11_controls_on_tables_and_on_known_sets():
    c11 = ec.CLAIMS[1]
    good = dimension_rows({2: (1.3, 1.2, 1.4), 4: (1.5, 1.4, 1.6)})
    assert parts(c11, {"edge/dimension": good}) == {"L2": SUPPORTED, "L4": SUPPORTED, "all": SUPPORTED}
    bad = dimension_rows({2: (1.3, 1.2, 1.4), 4: (0.98, 0.95, 1.0)})
    assert parts(c11, {"edge/dimension": bad})["L4"] == NOT_SUPPORTED
    # from masks: a noise-like boundary (dimension ~2) and a straight one (exactly 1)
    rng = np.random.default_rng(0)
    sizes = [2, 4, 8, 16]
    rows = {}
    for L, mask in (
        (2, rng.random((256, 256)) < 0.5),
        (3, np.add.outer(np.arange(256), np.zeros(256)) < 128),
    ):
        d, lo, hi, _ = fr.box_dimension(mask, sizes, n_boot=200, seed=0)
        rows[L] = (d, lo, hi)
    v = parts(c11, {"edge/dimension": dimension_rows(rows)})
    assert v["L2"] == SUPPORTED and v["L3"] == NOT_SUPPORTED


# ------------------------------------------------------------------ config ----


@pytest.mark.parametrize(
    "override, key",
    [
        ({"edge": {"maps": {"box_sizes": [2, 3, 4, 8]}}}, "edge.maps.box_sizes"),
        ({"edge": {"maps": {"resolution": 32}}}, "edge.maps.box_sizes"),
        ({"figures": {"edge": {"typical": {"seed": 3}}}}, "figures.edge.typical.seed"),
        ({"edge": {"maps": {"delta_a": {"a": [1.0, -1.0]}}}}, "edge.maps.delta_a.a"),
        (
            {"report": {"claims": {"claim11_map": "w1_w2"}}, "edge": {"maps": {"w1_w2": {"enabled": False}}}},
            "report.claims.claim11_map",
        ),
    ],
)
def test_edge_rules_between_keys_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config(override)


# ------------------------------------------------------------------ end to end ----


@pytest.mark.workflow
def test_smoke_run_writes_the_edge_tables_figures_and_claims(smoke_run):
    work, _ = smoke_run
    root = work / "results" / "edge"
    runs = pd.read_parquet(root / "runs.parquet")
    contract = [
        "run_id",
        "seed",
        "depth",
        "target",
        "data_scale",
        "init",
        "delta",
        "delta_star",
        "phi0",
        "regime",
        "status",
        "final_sharpness",
        "phi_increases",
    ]
    assert set(contract) <= set(runs) and runs["run_id"].is_unique
    assert {"flow", "edge", "unstable"} <= set(runs["regime"])
    conv = runs[runs["status"] == "converged"]
    assert (conv["final_edge_ratio"] <= 1 + 1e-6).all()  # no converged run at an unstable minimum
    dims = pd.read_parquet(root / "dimension.parquet")
    assert {"map", "depth", "dimension", "ci_low", "ci_high", "box_sizes"} <= set(dims)
    assert (dims["ci_low"] <= dims["dimension"]).all() and (dims["dimension"] <= dims["ci_high"]).all()
    for name in ("traces", "matrix_runs", "sharpness", "windows", "summary"):
        assert (root / f"{name}.{'csv' if name == 'summary' else 'parquet'}").is_file()
    for fig in ("traces", "final_sharpness", "maps", "box_counting", "matrix_sharpness"):
        assert (root / "figures" / f"{fig}.png").stat().st_size > 5000
    claims = pd.read_csv(work / "results" / "report" / "claims.csv")
    for claim_id in (10, 11):
        rows = claims[claims["claim_id"] == claim_id]
        assert len(rows) > 1 and rows["verdict"].ne("not run").all(), rows[["part", "verdict", "evidence"]]
    assert math.isfinite(float(claims.loc[claims["claim_id"] == 11, "estimate"].dropna().iloc[0]))


def test_exact_share_is_clopper_pearson():
    from pipeline.stats import proportion

    for k, n in [(0, 1), (0, 50), (3, 50), (25, 50), (49, 50), (50, 50), (7, 1000), (990, 1000)]:
        assert np.allclose(ec.exact_share(k, n, 0.95), proportion(k, n, 0.95), rtol=1e-9, atol=1e-12)
    est, lo, hi = ec.exact_share(5, 10**7, 0.95)  # millions of steps: fast, and sensible
    assert lo < 5e-7 < hi < 2e-6
