"""1-D bias study: the convex residual pair, its batched Nesterov trainer, exact Lipschitz, tables."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.bias1d import model as nets
from pipeline.bias1d import study
from pipeline.bias1d.reference import train_one_by_one
from pipeline.errors import UserError
from tests.helpers import dry_run, small_config

SHRUNK = {
    "seeds": 2,
    "data": {"points": 15},
    "optimizer": {"iterations": 300},
    "snapshots": [100],
    "grid_points": 51,
}


@pytest.fixture(scope="module")
def cfg():
    """The bias1d block of the smoke config, shrunk to seconds."""
    return small_config({"bias1d": SHRUNK, "report": {"claims": {"bias1d_iterations": 300}}})["bias1d"]


def random_params(runs, depth, seed=0, b_range=1.0):
    g = torch.Generator().manual_seed(seed)
    p = nets.PairParams.empty(depth, runs)
    p.w.copy_(torch.rand(depth, runs, 2, generator=g, dtype=torch.float64) * 0.6)
    p.b.copy_((torch.rand(depth, runs, 2, generator=g, dtype=torch.float64) * 2 - 1) * b_range)
    p.a.copy_(torch.rand(runs, 2, generator=g, dtype=torch.float64) * 2)
    p.c.copy_(torch.randn(runs, generator=g, dtype=torch.float64))
    return p


def random_data(runs, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(runs, n, generator=g, dtype=torch.float64) * 2 - 1).sort(-1).values
    return x, torch.randn(runs, n, generator=g, dtype=torch.float64)


def test_hand_written_gradients_equal_autograd_float64():
    p = random_params(runs=7, depth=9)
    x, y = random_data(7, 25)
    grad = p.like()
    mse = nets.gradients(p, x, y, grad)
    ref = nets.autograd_gradients(p, x, y)
    for k in ("w", "b", "a", "c"):
        torch.testing.assert_close(getattr(grad, k), getattr(ref, k), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mse, nets.mse(p, x, y), rtol=1e-12, atol=0)
    assert grad.b.abs().max() > 1e-3 and grad.w.abs().max() > 1e-3  # not trivially zero


def _convex_nondecreasing(w, b, grid):
    z = nets.network_values(w, b, grid)  # [..., P]
    first = np.diff(z, axis=-1)
    second = np.diff(z, 2, axis=-1)
    assert (first > 0).all()  # slope >= 1 everywhere
    assert (second >= -1e-12).all()
    assert (second > 1e-6).any()  # it does bend


def test_g_and_h_convex_and_nondecreasing_before_and_after_training():
    grid = np.linspace(-3, 3, 2001)
    p = random_params(runs=6, depth=8, b_range=2.0)
    _convex_nondecreasing(np.moveaxis(p.w.numpy(), 0, -1), np.moveaxis(p.b.numpy(), 0, -1), grid)
    x, y = random_data(6, 20)
    # a step size that drives many weights against the constraint
    trained, _, _ = nets.train_nesterov(p.clone(), x, 3 * y, lr=0.05, momentum=0.9, iterations=300)
    assert (trained.w >= 0).all() and (trained.a >= 0).all()
    assert (trained.w == 0).any()  # the projection was active
    _convex_nondecreasing(np.moveaxis(trained.w.numpy(), 0, -1), np.moveaxis(trained.b.numpy(), 0, -1), grid)


def test_kink_locations_solve_the_layer_equation():
    p = random_params(runs=5, depth=10, b_range=2.0).numpy()
    w, b = np.moveaxis(p["w"], 0, -1), np.moveaxis(p["b"], 0, -1)  # [R, 2, L]
    kinks = nets.kink_locations(w, b)
    for i in range(w.shape[-1]):
        z_prev = nets.network_values(w[..., :i], b[..., :i], kinks[..., i, None])[..., 0]
        np.testing.assert_allclose(z_prev, b[..., i], atol=1e-12)


def test_exact_lipschitz_equals_brute_force_on_a_fine_grid():
    p = random_params(runs=8, depth=6, seed=3, b_range=1.5).numpy()
    exact = nets.exact_lipschitz(p, -1.0, 1.0)
    brute = nets.brute_lipschitz(p, -1.0, 1.0, 400_001)
    assert (brute <= exact * (1 + 1e-9)).all()
    np.testing.assert_allclose(brute, exact, rtol=1e-6)
    # a coarse grid underestimates it for some run: exactness matters
    assert (nets.brute_lipschitz(p, -1.0, 1.0, 21) < exact * (1 - 1e-3)).any()


def test_piecewise_target_represented_exactly_with_biases_at_breakpoints(cfg):
    kx, ky = cfg["piecewise"]["knots_x"], cfg["piecewise"]["knots_y"]
    for depth in (2, 20):
        params = nets.represent_piecewise(kx, ky, depth)
        grid = np.linspace(-3, 3, 6001)
        np.testing.assert_allclose(
            nets.pair_values(params, grid)[0], nets.piecewise_values(kx, ky, grid), atol=1e-12
        )
        active = (np.moveaxis(params["w"], 0, -1) > 0).reshape(-1)
        kinks = nets.pair_breakpoints(params)[0][active]
        np.testing.assert_allclose(np.sort(kinks), kx[1:-1], atol=1e-12)
        assert nets.exact_lipschitz(params, -1, 1)[0] == pytest.approx(
            study.target_lipschitz(cfg, "piecewise")
        )
    with pytest.raises(ValueError, match="too small"):
        nets.represent_piecewise(kx, ky, 1)


def test_target_lipschitz_matches_dense_derivative(cfg):
    grid = np.linspace(cfg["data"]["low"], cfg["data"]["high"], 200_001)
    for name in ("piecewise", "sine"):
        v = study.target_values(cfg, name, grid)
        dense = np.abs(np.diff(v)).max() / (grid[1] - grid[0])
        assert study.target_lipschitz(cfg, name) == pytest.approx(dense, rel=1e-4)


def test_batched_training_equals_one_by_one_torch_sgd_nesterov():
    p = random_params(runs=5, depth=6, seed=4)
    x, y = random_data(5, 12, seed=5)
    batched, _, _ = nets.train_nesterov(p.clone(), x, y, lr=0.01, momentum=0.9, iterations=200)
    single = train_one_by_one(p.clone(), x, y, lr=0.01, momentum=0.9, iterations=200)
    torch.testing.assert_close(batched.flat, single.flat, rtol=0, atol=1e-12)
    # and a sub-batch trained alone ends where it ends inside the big batch
    sub, _, _ = nets.train_nesterov(
        p.select([1, 3]), x[[1, 3]], y[[1, 3]], lr=0.01, momentum=0.9, iterations=200
    )
    torch.testing.assert_close(sub.flat, batched.select([1, 3]).flat, rtol=0, atol=1e-12)


def test_shard_runs_equal_runs_trained_alone(cfg):
    whole = study.run_shard(cfg, depth=5)["runs"].set_index("run_id")
    alone = study.run_shard(cfg, depth=5, targets=["sine"])["runs"].set_index("run_id")
    cols = ["final_mse", "lipschitz", "bias_drift_rel_max", "weight_drift_median"]
    pd.testing.assert_frame_equal(whole.loc[alone.index, cols], alone[cols], rtol=1e-10)


def test_same_config_same_tables_and_contract_columns(cfg):
    a = study.run_shard(cfg, depth=4)
    b = study.run_shard(cfg, depth=4)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    runs = a["runs"]
    contract = [
        "run_id", "seed", "target", "depth", "init_low", "init_high", "final_mse", "lipschitz",
        "target_lipschitz", "bias_drift_rel_median", "bias_drift_rel_max", "weight_drift_median",
        "fitted_fraction",
    ]  # fmt: skip
    assert set(contract + ["interval", "weight_drift_rel_median", "status"]) <= set(runs.columns)
    assert runs["run_id"].is_unique
    n_runs = len(cfg["targets"]) * len(cfg["intervals"]) * len(cfg["optimizer"]["momenta"]) * cfg["seeds"]
    assert len(runs) == n_runs and set(runs["interval"]) == {iv["name"] for iv in cfg["intervals"]}
    # every run is measured at each snapshot and at the end; the end is the runs table
    snaps = a["snapshots"]
    assert sorted(snaps["iteration"].unique()) == [100, cfg["optimizer"]["iterations"]]
    end = snaps[snaps["iteration"] == cfg["optimizer"]["iterations"]].set_index("run_id")
    pd.testing.assert_series_equal(end["final_mse"], runs.set_index("run_id")["final_mse"])
    # kink moves agree with the per-layer table
    lay = a["layers"].assign(moved=lambda d: (d["kink_final"] - d["kink_init"]).abs())
    one = runs.iloc[0]
    mine = lay[lay["run_id"] == one["run_id"]]
    active = mine["kink_init"].between(cfg["data"]["low"], cfg["data"]["high"])
    assert one["kinks_active"] == active.sum()
    assert one["kinks_moved_lt_spacing"] == (mine.loc[active, "moved"] < one["data_spacing"]).sum()
    assert list(a["estimates"].columns[:3]) == ["run_id", "x", "yhat"]
    assert len(a["estimates"]) == n_runs * cfg["grid_points"]
    assert (runs["status"] == "ok").all() and (runs["final_mse"] < runs["final_mse"].max() + 1).all()
    # the curves' last point is the table's final MSE
    last = a["curves"][a["curves"]["step"] == cfg["optimizer"]["iterations"]].set_index("run_id")["mse"]
    np.testing.assert_allclose(last.loc[runs["run_id"]].to_numpy(), runs["final_mse"].to_numpy(), rtol=1e-9)
    # drift columns agree with the per-layer table
    layers = a["layers"]
    per_run = layers.groupby("run_id")["bias_drift_rel"].max()
    np.testing.assert_allclose(per_run.loc[runs["run_id"]].to_numpy(), runs["bias_drift_rel_max"].to_numpy())


def test_same_seed_shares_draws_across_intervals(cfg):
    runs = study.plan(cfg, depth=6)
    p = study.initial_params(cfg, runs)
    narrow = runs.index[
        (runs["interval"] == "narrow25") & (runs["seed"] == 1) & (runs["target"] == "piecewise")
    ][0]
    wide = runs.index[(runs["interval"] == "wide") & (runs["seed"] == 1) & (runs["target"] == "sine")][0]
    torch.testing.assert_close(p.w[:, narrow], p.w[:, wide])
    u_n = (p.b[:, narrow] - runs.loc[narrow, "init_low"]) / (
        runs.loc[narrow, "init_high"] - runs.loc[narrow, "init_low"]
    )
    u_w = (p.b[:, wide] - runs.loc[wide, "init_low"]) / (
        runs.loc[wide, "init_high"] - runs.loc[wide, "init_low"]
    )
    torch.testing.assert_close(u_n, u_w)


def test_measures_of_an_untrained_run(cfg):
    """At the initial parameters nothing moved, the biases keep their order, a reset loses nothing."""
    runs = study.plan(cfg, depth=6).iloc[:4]
    p0 = study.initial_params(cfg, runs).numpy()
    data = [study.training_points(cfg, t, s) for t, s in zip(runs["target"], runs["seed"], strict=True)]
    xs, ys = (np.stack([d[k] for d in data]) for k in (0, 1))
    m = study.measure(cfg, runs, p0, p0, xs, ys)
    assert (m["kinks_moved_lt_spacing"] == m["kinks_active"]).all() and (m["kinks_active"] > 0).all()
    assert (m["bias_drift_median"] == 0).all() and np.allclose(m["bias_rank_corr"], 1.0)
    assert np.allclose(m["reset_biases_loss"], 0.0) and np.allclose(m["mse_reset_weights"], m["final_mse"])


def test_missed_regions():
    x = np.linspace(0, 1, 11)
    y = 2 * x
    fit = y.copy()
    fit[2:5] += 0.5  # three points off, parallel to the data: close
    fit[7:10] = 0.0  # three points off, flat where the data rise: not close
    fit[6] += 0.5  # a lone missed point is no region
    assert study.missed_regions(x, y, fit, tol=0.05) == (2, 1)
    assert study.missed_regions(x, y, y, tol=0.05) == (0, 0)


def test_divergence_is_an_outcome_not_an_exception(cfg):
    c = copy.deepcopy(cfg)
    c["optimizer"]["lr"] = 50.0
    c["optimizer"]["iterations"] = 200
    runs = study.run_shard(c, depth=4, targets=["piecewise"])["runs"]
    assert (runs["status"] == "diverged").any()
    bad = runs[runs["status"] == "diverged"]
    assert bad["lipschitz"].isna().all() and (bad["fitted_fraction"] == 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "intervals": [
                    {"name": "narrow", "low": -0.25, "high": 0.25},
                    {"name": "bad", "low": 1.0, "high": 0.0},
                ]
            },
            r"bias1d.intervals \(bad\): low \(1.0\) must be below high \(0.0\)",
        ),
        (
            {"piecewise": {"knots_x": [1.0, 0.6, 0.2, -0.2, -0.6, -1.0]}},
            "knots_x must be strictly increasing",
        ),
        (
            {"intervals": [{"name": "a", "low": 0, "high": 1}, {"name": "a", "low": 0, "high": 2}]},
            "repeats a name",
        ),
        ({"weight_init": {"low": 0.5, "high": 0.1}}, r"bias1d.weight_init: low \(0.5\) must be below high"),
    ],
)
def test_bad_relations_give_one_sentence(change, message):
    with pytest.raises(UserError, match=message):
        small_config({"bias1d": change})


@pytest.mark.workflow
def test_bad_bias1d_value_fails_the_dry_run_with_the_key(workflow_copy, tmp_path):
    proc = dry_run(workflow_copy, {"bias1d": {"optimizer": {"momenta": [0.9, 1.5]}}}, tmp_path)
    assert proc.returncode != 0
    assert "Config key bias1d.optimizer.momenta.1 = 1.5 is invalid" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_smoke_run_writes_the_bias1d_tables_and_figures(smoke_run, smoke_config):
    work, _ = smoke_run
    out = work / "results" / "bias1d"
    runs = pd.read_parquet(out / "runs.parquet")
    b = smoke_config["bias1d"]
    per_depth = len(b["targets"]) * len(b["intervals"]) * len(b["optimizer"]["momenta"]) * b["seeds"]
    assert len(runs) == per_depth * len(b["depths"]) and runs["run_id"].is_unique
    assert set(pd.read_parquet(out / "estimates.parquet")["run_id"]) == set(runs["run_id"])
    assert ((runs["lipschitz"] > 0) & (runs["target_lipschitz"] > 0)).all()
    assert (pd.read_csv(out / "summary.csv")["runs"] == b["seeds"]).all()
    cells = pd.read_parquet(out / "robustness.parquet")
    assert (cells["runs"] == b["seeds"]).all() and cells["fail_fraction"].between(0, 1).all()
    for fig in ("fit", "drift", "lipschitz", "budget"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (work / "workflow" / "report" / f"bias1d_{fig}.rst").is_file()
