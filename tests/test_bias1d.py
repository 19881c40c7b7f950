"""1-D bias study: the convex residual pair, its batched Nesterov trainer, exact Lipschitz, tables."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.bias1d import measure, plan, reference, study, summary
from pipeline.bias1d import model as nets
from pipeline.bias1d.exact_search import exact_kink_search
from pipeline.bias1d.reference import train_one_by_one
from pipeline.errors import UserError
from pipeline.shard import Shard
from tests.helpers import dry_run, small_config

SHRUNK = {
    "depths": [4, 8],
    "seeds": 2,
    "data": {"points": 15},
    "optimizer": {"iterations": 300},
    "snapshots": [100],
    "grid_points": 51,
    "updates": {"depths": [4], "every": 50, "trace_points": 6, "seeds": 3},
}


@pytest.fixture(scope="module")
def cfg():
    """The bias1d block of the smoke config, shrunk to seconds (the comparison of bias updates
    at depth 4)."""
    claims = {"bias1d_iterations": 300, "claim9_depth": 4}
    return small_config({"bias1d": SHRUNK, "report": {"claims": claims}})["bias1d"]


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
            plan.target_lipschitz(cfg, "piecewise")
        )
    with pytest.raises(ValueError, match="too small"):
        nets.represent_piecewise(kx, ky, 1)


def test_target_lipschitz_matches_dense_derivative(cfg):
    grid = np.linspace(cfg["data"]["low"], cfg["data"]["high"], 200_001)
    for name in ("piecewise", "sine"):
        v = plan.target_values(cfg, name, grid)
        dense = np.abs(np.diff(v)).max() / (grid[1] - grid[0])
        assert plan.target_lipschitz(cfg, name) == pytest.approx(dense, rel=1e-4)


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
    whole = study.run_shard(cfg, Shard({"depth": 5}))["runs"].set_index("run_id")
    alone = study.run_shard({**cfg, "targets": ["sine"]}, Shard({"depth": 5}))["runs"].set_index("run_id")
    cols = ["final_mse", "lipschitz", "bias_drift_rel_max", "weight_drift_median"]
    pd.testing.assert_frame_equal(whole.loc[alone.index, cols], alone[cols], rtol=1e-10)


def test_same_config_same_tables_and_contract_columns(cfg):
    a = study.run_shard(cfg, Shard({"depth": 4}))
    b = study.run_shard(cfg, Shard({"depth": 4}))
    for name in a:
        if name != "timing":  # measured wall seconds
            pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert list(a["timing"]["searches"]) == [300 // 50] and (a["timing"]["grad_seconds"] > 0).all()
    assert a["runs"]["comparison"].any() and len(a["progress"]) > 0
    runs = a["runs"][a["runs"]["main_grid"]]
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
    pd.testing.assert_series_equal(end["final_mse"], a["runs"].set_index("run_id")["final_mse"])
    # kink moves agree with the per-layer table
    lay = a["layers"].assign(moved=lambda d: (d["kink_final"] - d["kink_init"]).abs())
    one = runs.iloc[0]
    mine = lay[lay["run_id"] == one["run_id"]]
    active = mine["kink_init"].between(cfg["data"]["low"], cfg["data"]["high"])
    assert one["kinks_active"] == active.sum()
    assert one["kinks_moved_lt_spacing"] == (mine.loc[active, "moved"] < one["data_spacing"]).sum()
    assert list(a["estimates"].columns[:3]) == ["run_id", "x", "yhat"]
    assert len(a["estimates"]) == len(a["runs"]) * cfg["grid_points"]
    assert (runs["status"] == "ok").all() and (runs["final_mse"] < runs["final_mse"].max() + 1).all()
    # the curves' last point is the table's final MSE
    last = a["curves"][a["curves"]["step"] == cfg["optimizer"]["iterations"]].set_index("run_id")["mse"]
    np.testing.assert_allclose(last.loc[runs["run_id"]].to_numpy(), runs["final_mse"].to_numpy(), rtol=1e-9)
    # so is the progress table's, for the comparison's runs
    prog = a["progress"].set_index(["run_id", "step"])["mse"]
    comp = a["runs"][a["runs"]["comparison"]]
    ends = prog.loc[[(r, cfg["optimizer"]["iterations"]) for r in comp["run_id"]]].to_numpy()
    np.testing.assert_allclose(ends, comp["final_mse"].to_numpy(), rtol=1e-12)
    # drift columns agree with the per-layer table
    layers = a["layers"]
    per_run = layers.groupby("run_id")["bias_drift_rel"].max()
    np.testing.assert_allclose(per_run.loc[runs["run_id"]].to_numpy(), runs["bias_drift_rel_max"].to_numpy())


def _search_loss(p, x, y, layer, network, b_value):
    q = p.clone()
    q.b[layer, :, network] = b_value
    return nets.mse(q, x, y)


def test_kink_search_picks_the_best_candidate_and_never_increases_the_loss():
    p = random_params(runs=6, depth=5, seed=7)
    x, y = random_data(6, 14, seed=8)
    # the first coordinate (layer 1 of g): its inputs are x, the chosen bias is the best candidate
    cand = reference.kink_candidates(x, p.b[0, :, 0])
    losses = torch.stack([_search_loss(p, x, y, 0, 0, cand[:, j]) for j in range(cand.shape[1])], -1)
    b, moved = reference.candidate_kink_search(p, x, y)
    q = p.clone()
    q.b[0] = torch.stack([b[0, :, 0], p.b[0, :, 1]], -1)
    torch.testing.assert_close(nets.mse(q, x, y), losses.min(-1).values, rtol=1e-12, atol=0)
    assert moved.any() and (moved[0, :, 0] == (losses.argmin(-1) != 0)).all()
    # rounds of coordinate descent never increase the training loss; unmoved biases are untouched
    before = nets.mse(p, x, y)
    for _ in range(3):
        b, moved = reference.candidate_kink_search(p, x, y)
        assert torch.equal(b[~moved], p.b[~moved])
        p.b.copy_(b)
        after = nets.mse(p, x, y)
        assert (after <= before * (1 + 1e-12)).all()
        before = after
    # a layer with zero weight cannot change the loss: its bias stays where it is
    p.w[2] = 0.0
    assert not reference.candidate_kink_search(p, x, y)[1][2].any()


def _brute_force_search(p, x, y):
    """One run at a time, one candidate at a time, the loss by `nets.mse` of the whole pair."""
    q = p.clone()
    for r in range(q.runs):
        one = q.select([r])
        for k in (0, 1):
            for i in range(q.depth):
                u = x[r : r + 1]
                for j in range(i):  # the layer's inputs z_{i-1}(x) with the biases found so far
                    u = u + one.w[j, 0, k] * torch.relu(u - one.b[j, 0, k])
                best, best_loss = None, None
                for value in reference.kink_candidates(u, one.b[i, :, k])[0]:
                    loss = _search_loss(one, x[r : r + 1], y[r : r + 1], i, k, value)[0]
                    if best_loss is None or loss < best_loss:
                        best, best_loss = value, loss
                one.b[i, 0, k] = best
        q.b[:, r] = one.b[:, 0]
    return q.b


def test_batched_kink_search_equals_one_run_brute_force():
    p = random_params(runs=4, depth=4, seed=9)
    x, y = random_data(4, 9, seed=10)
    b, moved = reference.candidate_kink_search(p, x, y)
    torch.testing.assert_close(b, _brute_force_search(p, x, y), rtol=0, atol=1e-14)
    assert moved.sum() > 4


def test_training_with_searches_resets_the_momentum_of_moved_biases_only():
    p = random_params(runs=4, depth=5, seed=11)
    x, y = random_data(4, 12, seed=12)
    stats = {}
    out, _, _ = nets.train_nesterov(
        p.clone(),
        x,
        y,
        lr=0.01,
        momentum=0.9,
        iterations=40,
        search_every=20,
        search_runs=[1, 3],
        search_fn=exact_kink_search,
        stats=stats,
    )
    plain, _, _ = nets.train_nesterov(p.clone(), x, y, lr=0.01, momentum=0.9, iterations=40)
    assert stats["searches"] == 2 and (stats["kink_moves"][[0, 2]] == 0).all() and stats["kink_moves"][1] > 0
    # runs without searches train as without any; searched runs end lower (a search after the last step)
    torch.testing.assert_close(out.select([0, 2]).flat, plain.select([0, 2]).flat, rtol=0, atol=0)
    assert (nets.mse(out, x, y)[[1, 3]] < nets.mse(plain, x, y)[[1, 3]]).all()
    # by hand: 20 steps, a search with the moved biases' momentum set to zero, 20 steps, a search
    sub = p.select([1, 3])
    step1, _, _ = nets.train_nesterov(sub.clone(), x[[1, 3]], y[[1, 3]], lr=0.01, momentum=0.9, iterations=20)
    b, moved = exact_kink_search(step1, x[[1, 3]], y[[1, 3]])
    assert moved.any()
    vel = nets.PairParams.empty(sub.depth, sub.runs)  # replay with the momentum kept explicitly
    q, g = sub.clone(), sub.like()
    for step in range(40):
        if step == 20:
            b, moved = exact_kink_search(q, x[[1, 3]], y[[1, 3]])
            q.b.copy_(b)
            vel.b.masked_fill_(moved, 0.0)
        nets.gradients(q, x[[1, 3]], y[[1, 3]], g)
        vel.flat.mul_(0.9).add_(g.flat)
        q.flat.add_(g.flat.add_(vel.flat, alpha=0.9), alpha=-0.01)
        q.project()
    q.b.copy_(exact_kink_search(q, x[[1, 3]], y[[1, 3]])[0])
    torch.testing.assert_close(out.select([1, 3]).flat, q.flat, rtol=0, atol=1e-14)


def test_test_error_against_the_true_target_on_the_grid(cfg):
    runs = plan.plan(cfg, depth=4)
    runs = runs[runs["noise_std"] > 0].iloc[:3]
    p = study.initial_params(cfg, runs).numpy()
    grid = np.linspace(cfg["data"]["low"], cfg["data"]["high"], cfg["grid_points"])
    direct = [
        np.mean((nets.pair_values({k: (v[:, [r]] if v.ndim == 3 else v[[r]]) for k, v in p.items()}, grid)[0]
                 - plan.target_values(cfg, t, grid)) ** 2)
        for r, t in enumerate(runs["target"])
    ]  # fmt: skip
    np.testing.assert_allclose(measure.test_error(cfg, runs, p), direct, rtol=1e-13)
    data = [
        plan.training_points(cfg, t, s, n)
        for t, s, n in zip(runs["target"], runs["seed"], runs["noise_std"], strict=True)
    ]
    xs, ys = (np.stack([d[k] for d in data]) for k in (0, 1))
    m = measure.measure(cfg, runs, p, p, xs, ys, 0)
    np.testing.assert_allclose(m["test_mse"], direct, rtol=1e-13)
    assert not np.allclose(m["test_mse"], m["final_mse"])  # noisy labels: test != training error


def test_noise_free_data_and_the_comparison_leave_the_main_grid_as_it_was(cfg):
    for target in cfg["targets"]:
        x, y = plan.training_points(cfg, target, 1, 0.0)
        assert np.array_equal(y, plan.target_values(cfg, target, x))
        x1, y1 = plan.training_points(cfg, target, 1, 0.1)
        assert np.array_equal(x1, x) and np.allclose(np.std(y1 - y), 0.1, rtol=0.5)
    off = copy.deepcopy(cfg)
    off["updates"]["enabled"] = False
    without, with_ = study.run_shard(off, Shard({"depth": 4})), study.run_shard(cfg, Shard({"depth": 4}))
    assert not without["runs"]["comparison"].any() and without["progress"].empty
    main = with_["runs"]["main_grid"]
    assert with_["runs"]["run_id"][main].tolist() == without["runs"]["run_id"].tolist()
    cols = [c for c in without["runs"].columns if c not in ("comparison",)]
    pd.testing.assert_frame_equal(with_["runs"][main][cols], without["runs"][cols], check_exact=True)
    snaps = with_["snapshots"][with_["snapshots"]["run_id"].isin(without["runs"]["run_id"])]
    pd.testing.assert_frame_equal(snaps.reset_index(drop=True), without["snapshots"], check_exact=True)
    # the comparison: both methods and noise levels for every seed, ids of the new runs
    comp = with_["runs"][with_["runs"]["comparison"]]
    up = cfg["updates"]
    assert (
        len(comp)
        == len(up["targets"])
        * len(up["intervals"])
        * len(up["momenta"])
        * len(up["noise_stds"])
        * 2
        * up["seeds"]
    )
    assert comp["run_id"].str.endswith("-kink_search").sum() == len(comp) // 2
    assert (comp.loc[comp["method"].eq("kink_search"), "kink_moves"] > 0).all()
    assert (comp.loc[comp["method"].eq("gradient"), "searches"] == 0).all()


def test_equal_time_takes_the_last_step_within_the_gradient_runs_time(cfg):
    tables = study.run_shard(cfg, Shard({"depth": 4}))
    runs, prog = tables["runs"], tables["progress"]
    timing = tables["timing"].assign(
        seconds_per_run_step=1.0, seconds_per_run_search=10.0
    )  # search = 10 steps
    eq = summary.equal_time(runs[runs["comparison"]], prog, timing, 300).set_index("run_id")
    is_search = runs.set_index("run_id").loc[eq.index, "method"].eq("kink_search")
    assert (eq.loc[~is_search, "step"] == 300).all()
    # a search every 50 steps costs 10: within 300 step-times, 250 steps and 5 searches (= 300)
    steps = sorted(prog["step"].unique())
    best = max(s for s in steps if s + 10 * (s // 50) <= 300)
    assert (eq.loc[is_search, "step"] == best).all()
    costs = summary.run_costs(runs[runs["comparison"]], timing)
    fit = costs["steps_to_fit"].notna() & costs["method"].eq("kink_search")
    expect = costs.loc[fit, "steps_to_fit"] + 10 * np.floor(costs.loc[fit, "steps_to_fit"] / 50)
    np.testing.assert_allclose(costs.loc[fit, "seconds_to_fit"], expect)


def test_same_seed_shares_draws_across_intervals(cfg):
    runs = plan.plan(cfg, depth=6)
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
    runs = plan.plan(cfg, depth=6).iloc[:4]
    p0 = study.initial_params(cfg, runs).numpy()
    data = [plan.training_points(cfg, t, s) for t, s in zip(runs["target"], runs["seed"], strict=True)]
    xs, ys = (np.stack([d[k] for d in data]) for k in (0, 1))
    m = measure.measure(cfg, runs, p0, p0, xs, ys, 0)
    assert (m["kinks_moved_lt_spacing"] == m["kinks_active"]).all() and (m["kinks_active"] > 0).all()
    assert (m["bias_drift_median"] == 0).all() and np.allclose(m["bias_rank_corr"], 1.0)
    assert np.allclose(m["reset_biases_loss"], 0.0) and np.allclose(m["mse_reset_weights"], m["final_mse"])


def pieces(counts):
    """(judged, close) of the one run of `affine_pieces`."""
    return tuple(int(c[0]) for c in counts)


def test_affine_pieces_compare_slope_and_offset_with_the_local_least_squares_line():
    x = np.linspace(-1, 1, 21)[None, :]
    y = np.abs(np.abs(x) - 0.5)  # bends at -0.5, 0 and 0.5: no line fits either half
    bps = np.array([[0.0, np.nan]])  # the estimate bends at 0 only (a NaN breakpoint bends nothing)

    def ls_pieces(y, shift=0.0):
        fit = np.empty_like(y)
        for side in (x[0] <= 0, x[0] > 0):
            slope, offset = np.polyfit(x[0, side], y[0, side], 1)
            fit[0, side] = slope * x[0, side] + offset + shift
        return fit

    # each piece is its points' least-squares line and misses some of them: judged and close
    assert pieces(measure.affine_pieces(x, y, ls_pieces(y), bps, 0.05)) == (2, 2)
    # the same slopes, offset by 0.2: a slope-only comparison would call these close
    assert pieces(measure.affine_pieces(x, y, ls_pieces(y, 0.2), bps, 0.05)) == (2, 0)
    # a piece that fits every point it covers is not judged; nor is one covering a single point
    assert pieces(measure.affine_pieces(x, y, y.copy(), bps, 0.05)) == (0, 0)
    lone = np.array([[0.95, np.nan]])  # the right piece covers only x = 1, which it misses
    assert pieces(measure.affine_pieces(x, y, np.where(x > 0.95, y + 1.0, y), lone, 0.05)) == (0, 0)


def test_divergence_is_an_outcome_not_an_exception(cfg):
    c = copy.deepcopy(cfg)
    c["optimizer"]["lr"] = 50.0
    c["optimizer"]["iterations"] = 200
    runs = study.run_shard({**c, "targets": ["piecewise"]}, Shard({"depth": 4}))["runs"]
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
    extra = b["primary_seeds"]  # its cells get more seeds
    primary = len(extra["targets"]) * len(extra["intervals"]) * len(extra["momenta"]) * len(extra["depths"])
    main = len(b["targets"]) * len(b["intervals"]) * len(b["optimizer"]["momenta"]) * len(b["depths"])
    expected = main * b["seeds"] + primary * (extra["seeds"] - b["seeds"])
    assert runs["main_grid"].sum() == expected and runs["run_id"].is_unique
    assert set(runs["method"]) == {"gradient", "kink_search"} and set(runs["noise_std"]) == {0.0, 0.1}
    assert set(pd.read_parquet(out / "estimates.parquet")["run_id"]) == set(runs["run_id"])
    assert ((runs["lipschitz"] > 0) & (runs["target_lipschitz"] > 0) & (runs["test_mse"] > 0)).all()
    cells = pd.read_parquet(out / "robustness.parquet")
    is_primary = cells["interval"].isin(extra["intervals"]) & cells["target"].isin(extra["targets"])
    is_primary &= cells["momentum"].isin(extra["momenta"]) & cells["depth"].isin(extra["depths"])
    assert (cells["runs"] == np.where(is_primary, extra["seeds"], b["seeds"])).all()
    assert cells["fail_fraction"].between(0, 1).all() and cells["miss_fraction"].between(0, 1).all()
    assert set(cells["kind"]) >= {"centred, no knot", "offset, no knot", "centred, every knot"}
    updates = pd.read_csv(out / "updates.csv")
    assert len(updates) == 16 and (updates["runs"] == b["updates"]["seeds"]).all()
    assert len(pd.read_parquet(out / "timing.parquet")) == len(b["depths"])
    figures = ("fit", "drift", "lipschitz", "budget", "updates_loss", "updates_generalisation", "updates_fit")
    for fig in figures:
        assert (out / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (work / "workflow" / "report" / f"bias1d_{fig}.rst").is_file()
