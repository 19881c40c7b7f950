"""Controls of claims 5, 6 and 9 (docs/claims.md): for every part, inputs on which it must say
`supported` and inputs on which it must say `not supported` - constructed tables, constructed
estimates measured by the study's own `measure`, and tiny runs with a mechanism switched off."""

import copy

import numpy as np
import pandas as pd
import pytest

from pipeline.bias1d import measure, plan, study, summary
from pipeline.bias1d import model as nets
from pipeline.bias1d.claims import matched_mse, speed_ratio
from pipeline.claims import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, SUPPORTED, all_claims, combine
from pipeline.config import load_config
from pipeline.shard import Shard
from tests.helpers import small_config


@pytest.fixture(scope="module")
def th():
    """The default config's thresholds and primary settings (constructed tables)."""
    return load_config()["report"]["claims"]


@pytest.fixture(scope="module")
def smoke_th():
    """The smoke config's (primary depth 8, budget 500: the measured constructed estimates)."""
    return small_config()["report"]["claims"]


def claim(claim_id):
    return next(c for c in all_claims() if c.claim_id == claim_id)


def evaluate(claim_id, tables, th, setting=None):
    c = claim(claim_id)
    return c.evaluate(tables, c.primary(tables, th) if setting is None else setting, th)


def verdicts(parts) -> dict[str, str]:
    return {p.part: p.verdict for p in parts}


# ------------------------------------------------------------------ constructed tables --------

INTERVALS = (
    ("narrow05", 0.05, "centred, no knot"),
    ("narrow75", 0.75, "centred, every knot"),
    ("wide", 1.5, ""),
)


def bias1d_tables(
    narrow_fail=0.9,
    wide_fail=0.1,
    lipschitz=0.9,
    close=0.9,
    bias_move=0.2,
    kink_move=0.3,
    wide_collapsed=0,
    seeds=30,
):
    """Runs and snapshots of the 1-D study at the primary setting (piecewise, L = 20, momentum
    0.99, 20000 steps) with the given tendencies: shares of seeds whose narrow05 (wide) run
    misses a point, whose missing narrow run has Lipschitz ratio `lipschitz` and whose pieces
    are close (`close`: the share of seeds whose pieces all are); the live layers' median
    moves (spacings, times a factor in [0.8, 1.2]); `wide_collapsed` wide runs collapsed."""
    rng = np.random.default_rng(1)
    runs, snaps = [], []
    for interval, half, kind in INTERVALS:
        fail = narrow_fail if interval != "wide" else wide_fail
        for seed in range(seeds):
            rid = f"{interval}-{seed}"
            runs.append(
                dict(run_id=rid, seed=seed, target="piecewise", depth=20, interval=interval, half_width=half,
                     momentum=0.99, lr=0.002, interval_kind=kind or "centred, every knot")
            )  # fmt: skip
            failed = seed < round(fail * seeds)
            collapsed = interval == "wide" and seed >= seeds - wide_collapsed
            pieces = 3 if failed else 0
            snaps.append(
                dict(run_id=rid, iteration=20000, effective_time=4000.0,
                     status="collapsed" if collapsed else "ok", fail=failed or collapsed,
                     lipschitz_ratio=lipschitz if failed else 1.0, pieces=pieces,
                     pieces_close=pieces if rng.random() < close else pieces - 1, live_layers=30,
                     live_bias_drift_spacings_median=bias_move * rng.uniform(0.8, 1.2),
                     live_kink_drift_spacings_median=kink_move * rng.uniform(0.8, 1.2),
                     knot_distance_spacings_median=3.0, bias_drift_spacings_median=1.0, bias_rank_corr=0.9,
                     reset_biases_loss=0.5, final_mse=1e-3)
            )  # fmt: skip
    return {"bias1d/runs": pd.DataFrame(runs), "bias1d/snapshots": pd.DataFrame(snaps)}


def test_claim5_controls(th):
    assert verdicts(evaluate(5, bias1d_tables(), th)) == {"a": SUPPORTED, "b": SUPPORTED}
    assert verdicts(evaluate(5, bias1d_tables(bias_move=4.0, kink_move=6.0), th)) == {
        "a": NOT_SUPPORTED,
        "b": NOT_SUPPORTED,
    }
    # biases that stay while kinks move (other layers' weights moved them): the parts differ
    assert verdicts(evaluate(5, bias1d_tables(bias_move=0.2, kink_move=6.0), th)) == {
        "a": SUPPORTED,
        "b": NOT_SUPPORTED,
    }
    # moves scattered around the threshold: the interval straddles it
    assert verdicts(evaluate(5, bias1d_tables(bias_move=1.0, kink_move=1.0), th))["a"] == INCONCLUSIVE
    # the primary setting is the narrow interval; the evidence gives the drift by effective time
    assert claim(5).primary(bias1d_tables(), th) == {
        "target": "piecewise", "depth": 20, "momentum": 0.99, "iterations": 20000, "interval": "narrow05"
    }  # fmt: skip
    assert "4e+03 (m 0.99): 0." in evaluate(5, bias1d_tables(), th)[0].evidence
    # too few seeds for a distribution-free 95 % interval of a median: not run
    assert verdicts(evaluate(5, bias1d_tables(seeds=5), th)) == {"a": NOT_RUN, "b": NOT_RUN}


def test_claim6_controls(th):
    good = evaluate(6, bias1d_tables(), th)
    assert verdicts(good) == {"a": SUPPORTED, "b": SUPPORTED, "c": SUPPORTED, "d": SUPPORTED}
    # the primary setting's evidence gives the verdict per kind of narrow interval
    assert "centred, no knot: narrow05 supported" in good[0].evidence
    assert "centred, every knot: narrow75 supported" in good[0].evidence
    got = verdicts(evaluate(6, bias1d_tables(narrow_fail=0.1, wide_fail=0.9), th))
    assert got["a"] == NOT_SUPPORTED and got["b"] == NOT_SUPPORTED
    # the Lipschitz clause and the local-line clause, each on its own
    got = verdicts(evaluate(6, bias1d_tables(lipschitz=1.5), th))
    assert got == {"a": SUPPORTED, "b": SUPPORTED, "c": NOT_SUPPORTED, "d": SUPPORTED}
    got = verdicts(evaluate(6, bias1d_tables(close=0.1), th))
    assert got == {"a": SUPPORTED, "b": SUPPORTED, "c": SUPPORTED, "d": NOT_SUPPORTED}
    # a Lipschitz constant within the declared relative tolerance is no larger than the target's
    eps = th["claim6_lipschitz_rel_tol"]
    assert verdicts(evaluate(6, bias1d_tables(lipschitz=1 + eps / 2), th))["c"] == SUPPORTED
    # no narrow run misses a point: c and d have nothing to judge
    got = verdicts(evaluate(6, bias1d_tables(narrow_fail=0.0), th))
    assert got["a"] == NOT_SUPPORTED and got["c"] == got["d"] == NOT_RUN


def test_claim6_leaves_collapses_out_of_the_fit_shares(th):
    """Wide runs that collapsed (a loss spike, an output scale projected to 0, a line ever after)
    are optimisation failures, not fits that the init interval decided: they are left out."""
    parts = {p.part: p for p in evaluate(6, bias1d_tables(wide_fail=0.0, wide_collapsed=20), th)}
    assert parts["b"].verdict == SUPPORTED and "left out: 20 collapsed" in parts["b"].evidence
    assert parts["b"].estimate == 0 and "0 of 10" in parts["b"].evidence  # the seeds that did not collapse


def test_claim6_grid_spans_every_narrow_interval(th):
    grid = claim(6).grid(bias1d_tables(), th)
    assert [s["narrow"] for s in grid] == ["narrow05", "narrow75"]
    assert grid[0] == claim(6).primary(bias1d_tables(), th)


# ------------------------------------------------------------ constructed estimates, measured ---


@pytest.fixture(scope="module")
def cfg():
    return small_config()["bias1d"]


def hinge_params(cfg, knots, shift=0.0, seeds=6, depth=8):
    """A pair whose estimate is the least-squares fit to the piecewise target's training points
    among continuous piecewise-affine functions bending only at `knots` (its kinks), plus
    `shift` right of the last knot; one copy per seed."""
    x, y = plan.training_points(cfg, "piecewise", 0, 0.0)
    lo, hi = cfg["data"]["low"], cfg["data"]["high"]
    basis = np.column_stack([np.ones_like(x), x, *[np.maximum(x - k, 0) for k in knots]])
    coef = np.linalg.lstsq(basis, y, rcond=None)[0]
    at = np.array([lo, *knots, hi])
    values = np.column_stack([np.ones_like(at), at, *[np.maximum(at - k, 0) for k in knots]]) @ coef
    values[-1] += shift
    one = nets.represent_piecewise(at, values, depth)
    return {k: np.repeat(v, seeds, axis=1 if v.ndim == 3 else 0) for k, v in one.items()}


def measured_tables(cfg, th, estimates: dict, collapse_step=None):
    """Claim tables from constructed final parameters (per interval name, as `hinge_params`
    gives them), measured by the study's `measure` at the primary budget."""
    its = th["bias1d_iterations"]
    all_runs, snaps = [], []
    for interval, final in estimates.items():
        runs = plan.plan(cfg, th["bias1d_depth"])
        runs = runs[
            runs["interval"].eq(interval)
            & runs["target"].eq("piecewise")
            & np.isclose(runs["momentum"], 0.99)
        ]
        runs = runs[runs["main_grid"]].reset_index(drop=True).iloc[: final["c"].shape[0]]
        data = [plan.training_points(cfg, "piecewise", s) for s in runs["seed"]]
        xs, ys = (np.stack([d[k] for d in data]) for k in (0, 1))
        init = study.initial_params(cfg, runs).numpy()
        m = measure.measure(cfg, runs, init, final, xs, ys, its, collapse_step)
        all_runs.append(runs)
        snaps.append(m.assign(run_id=runs["run_id"], iteration=its))
    return {
        "bias1d/runs": pd.concat(all_runs, ignore_index=True),
        "bias1d/snapshots": pd.concat(snaps, ignore_index=True),
    }


def test_claim6_on_estimates_with_kinks_at_every_knot_or_at_none(cfg, smoke_th):
    kx, ky = cfg["piecewise"]["knots_x"], cfg["piecewise"]["knots_y"]
    exact = nets.represent_piecewise(kx, ky, 8)
    exact = {k: np.repeat(v, 6, axis=1 if v.ndim == 3 else 0) for k, v in exact.items()}
    # kinks inside narrow05 only, where no training point lies: each outer piece is the
    # least-squares line of its half of the data, which bends at two knots: it misses points
    frozen = hinge_params(cfg, [-0.04, 0.0, 0.04])
    got = verdicts(evaluate(6, measured_tables(cfg, smoke_th, {"narrow05": frozen, "wide": exact}), smoke_th))
    assert got == {"a": SUPPORTED, "b": SUPPORTED, "c": SUPPORTED, "d": SUPPORTED}
    # kinks at every knot (the interval that contains all of them): the estimate fits
    got = verdicts(evaluate(6, measured_tables(cfg, smoke_th, {"narrow05": exact, "wide": frozen}), smoke_th))
    assert got["a"] == NOT_SUPPORTED and got["b"] == NOT_SUPPORTED and got["c"] == NOT_RUN
    # the same kinks with the right piece shifted by 0.2: same slopes, wrong offset
    shifted = hinge_params(cfg, [-0.04, 0.0, 0.04], shift=0.2)
    got = verdicts(
        evaluate(6, measured_tables(cfg, smoke_th, {"narrow05": shifted, "wide": exact}), smoke_th)
    )
    assert got["a"] == SUPPORTED and got["d"] == NOT_SUPPORTED


def test_collapse_status_needs_the_projection_spike_and_an_affine_estimate(cfg, smoke_th):
    kx, ky = cfg["piecewise"]["knots_x"], cfg["piecewise"]["knots_y"]
    exact = {
        k: np.repeat(v, 6, axis=1 if v.ndim == 3 else 0)
        for k, v in nets.represent_piecewise(kx, ky, 8).items()
    }
    line = copy.deepcopy(exact)
    line["a"][:, 0] = 0.0  # g's scale projected to 0 and h's layers dead: an affine estimate
    line["w"][:, :, 1] = 0.0
    step = np.array([90.0, 90.0, 90.0, np.inf, 90.0, 90.0])
    snaps = measured_tables(cfg, smoke_th, {"wide": line}, step)["bias1d/snapshots"]
    assert snaps["status"].tolist() == ["collapsed"] * 3 + ["ok"] + ["collapsed"] * 2  # no spike: ok
    assert (snaps["live_layers"] == 0).all() and snaps["fail"].all()
    # a spike that set a scale to 0 but a run that bends again afterwards is not a collapse
    assert (measured_tables(cfg, smoke_th, {"wide": exact}, step)["bias1d/snapshots"]["status"] == "ok").all()
    # a collapse after the measured step does not count yet
    late = np.full(6, smoke_th["bias1d_iterations"] + 1.0)
    assert (measured_tables(cfg, smoke_th, {"wide": line}, late)["bias1d/snapshots"]["status"] == "ok").all()


def test_claim5_counts_live_layers_only_biases_frozen_or_free(cfg, smoke_th):
    runs = plan.plan(cfg, smoke_th["bias1d_depth"])
    runs = runs[
        runs["interval"].eq("narrow05") & runs["target"].eq("piecewise") & np.isclose(runs["momentum"], 0.99)
    ]
    runs = runs[runs["main_grid"]].reset_index(drop=True)
    init = study.initial_params(cfg, runs).numpy()
    spacing = (cfg["data"]["high"] - cfg["data"]["low"]) / (cfg["data"]["points"] - 1)

    def tables(final):
        data = [plan.training_points(cfg, "piecewise", s) for s in runs["seed"]]
        xs, ys = (np.stack([d[k] for d in data]) for k in (0, 1))
        m = measure.measure(cfg, runs, init, final, xs, ys, smoke_th["bias1d_iterations"])
        return {
            "bias1d/runs": runs,
            "bias1d/snapshots": m.assign(run_id=runs["run_id"], iteration=smoke_th["bias1d_iterations"]),
        }

    # biases frozen, weights trained (tripled): the biases did not move
    frozen = {**init, "w": init["w"] * 3}
    got = verdicts(evaluate(5, tables(frozen), smoke_th))
    assert got == {"a": SUPPORTED, "b": SUPPORTED}
    # biases free: every one moved by 3 data spacings
    free = {**init, "b": init["b"] + 3 * spacing}
    assert verdicts(evaluate(5, tables(free), smoke_th)) == {"a": NOT_SUPPORTED, "b": NOT_SUPPORTED}
    # the moved biases belong to layers whose weight ended at 0: they bend nothing and do not count
    dead = np.arange(init["w"].shape[0]) % 3 != 0  # two layers in three
    w = init["w"].copy()
    w[dead] = 0.0
    b = init["b"].copy()
    b[dead] += 3 * spacing
    m = tables({**init, "w": w, "b": b})
    assert (m["bias1d/snapshots"]["bias_drift_spacings_median"] > 2).all()  # all layers: moved
    assert verdicts(evaluate(5, m, smoke_th)) == {"a": SUPPORTED, "b": SUPPORTED}  # live layers: not


# ------------------------------------------------------------------ claim 9 ---------------------


def updates_tables(
    steps_ratio=0.5,
    seconds_per_search=1e-4,
    raise_lip=1.5,
    raise_test=1.5,
    matched=None,
    noises=(0.0, 0.1),
    seeds=20,
):
    """The comparison at claim 9's primary setting: per seed and noise level a gradient-only run
    fitting in 4000 steps and a kink-search run fitting in `steps_ratio` as many (times a factor
    in [0.9, 1.1]), searches every 100 steps; on noisy data the search's Lipschitz constant and
    test error are `raise_*` times higher at the end, and `matched` times (default the same) at
    the gradient-only run's lowest MSE, which the search reaches at step 2000."""
    rng = np.random.default_rng(2)
    matched = (raise_lip, raise_test) if matched is None else matched
    runs, snaps, progress = [], [], []
    for seed in range(seeds):
        for noise in noises:
            jitter = rng.uniform(0.9, 1.1)
            for method in ("gradient", "kink_search"):
                search = method == "kink_search"
                rid = f"{seed}-{noise}-{method}"
                lip_end = 2.0 * (raise_lip if search and noise > 0 else 1.0) * jitter
                test_end = 1e-3 * (raise_test if search and noise > 0 else 1.0) * jitter
                lip_match = 2.0 * (matched[0] if search and noise > 0 else 1.0) * jitter
                test_match = 1e-3 * (matched[1] if search and noise > 0 else 1.0) * jitter
                runs.append(
                    dict(run_id=rid, seed=seed, target="piecewise", depth=10, interval="narrow05",
                         half_width=0.05, momentum=0.99, noise_std=noise, method=method, main_grid=False,
                         comparison=True, iterations=20000, searches=200 if search else 0,
                         steps_to_fit=4000.0 * (steps_ratio * jitter if search else 1.0))
                )  # fmt: skip
                snaps.append(
                    dict(run_id=rid, iteration=20000, status="ok", final_mse=1e-4 if search else 2e-4,
                         lipschitz=lip_end, test_mse=test_end)
                )  # fmt: skip
                for step, mse in (
                    (0, 1.0),
                    (2000, 2e-4 if search else 1e-3),
                    (20000, 1e-4 if search else 2e-4),
                ):
                    at_match = search and step == 2000 or not search and step == 20000
                    progress.append(
                        dict(run_id=rid, step=step, searches=step // 100 if search else 0, mse=mse,
                             lipschitz=lip_match if at_match else lip_end,
                             test_mse=test_match if at_match else test_end)
                    )  # fmt: skip
    timing = pd.DataFrame(
        [dict(depth=10, seconds_per_run_step=1e-5, seconds_per_run_search=seconds_per_search,
              search_every=100, search_cost_steps=seconds_per_search / 1e-5)]
    )  # fmt: skip
    return {
        "bias1d/runs": pd.DataFrame(runs),
        "bias1d/snapshots": pd.DataFrame(snaps),
        "bias1d/progress": pd.DataFrame(progress),
        "bias1d/timing": timing,
    }


def test_claim9_controls(th):
    assert verdicts(evaluate(9, updates_tables(), th)) == dict.fromkeys("abcdef", SUPPORTED)
    got = verdicts(evaluate(9, updates_tables(steps_ratio=2.0, raise_lip=0.7, raise_test=0.7), th))
    assert got == dict.fromkeys("abcdef", NOT_SUPPORTED)
    # fewer steps to fit, but searches so costly that it takes longer: (a) and (b) part
    # (a search every 100 steps costing 300 steps: 2000 steps and 20 searches = 8000 step-times)
    got = verdicts(evaluate(9, updates_tables(seconds_per_search=3e-3), th))
    assert got["a"] == SUPPORTED and got["b"] == NOT_SUPPORTED
    # a higher Lipschitz constant and test error at the end that is only a lower training MSE:
    # at matched training MSE the estimates are alike
    got = verdicts(evaluate(9, updates_tables(matched=(1.0, 1.0)), th))
    assert got == {"a": SUPPORTED, "b": SUPPORTED, "c": SUPPORTED, "d": SUPPORTED} | dict.fromkeys(
        "ef", NOT_SUPPORTED
    )
    # only (b) depends on measured time
    assert {p.part for p in evaluate(9, updates_tables(), th) if p.timing_dependent} == {"b"}
    # without noisy labels the Lipschitz and test-error parts are not run
    got = verdicts(evaluate(9, updates_tables(noises=(0.0,)), th))
    assert got == {"a": SUPPORTED, "b": SUPPORTED} | dict.fromkeys("cdef", NOT_RUN)
    # the robustness grid: the comparison's cells at every measured budget
    assert claim(9).grid(updates_tables(), th) == [
        {"target": "piecewise", "depth": 10, "interval": "narrow05", "momentum": 0.99, "iterations": 20000}
    ]


def test_claim9_steps_to_fit_counts_never_as_infinitely_many():
    never, fit = np.inf, 100.0
    np.testing.assert_array_equal(
        speed_ratio([50.0, never, fit, never], [fit, fit, never, never]), [0.5, np.inf, 0.0, 1.0]
    )


def test_claim9_never_fitting_search_is_decided_not_dropped(th):
    """A search that never fits gives an infinite ratio: the part is not supported, not 'not run'."""
    tables = updates_tables()
    runs = tables["bias1d/runs"]
    runs.loc[runs["method"].eq("kink_search"), "steps_to_fit"] = np.nan
    parts = {p.part: p for p in evaluate(9, tables, th)}
    assert parts["a"].verdict == NOT_SUPPORTED and parts["a"].estimate == np.inf


def test_matched_mse_takes_each_run_where_both_first_reach_the_lowest_common_mse():
    progress = pd.DataFrame(
        dict(run_id=["g"] * 3 + ["s"] * 3, step=[0, 10, 20] * 2, mse=[1.0, 0.5, 0.2, 1.0, 0.1, 0.05],
             lipschitz=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], test_mse=[0.1] * 6)
    )  # fmt: skip
    pairs = pd.DataFrame({"run_id_gradient": ["g"], "run_id_kink_search": ["s"]})
    out = matched_mse(progress, pairs, budget=20)
    assert out.loc[0, "mse_matched"] == 0.2  # the gradient-only run's lowest
    assert (
        out.loc[0, "lipschitz_matched_gradient"] == 3.0 and out.loc[0, "lipschitz_matched_kink_search"] == 5.0
    )
    # within a smaller budget the lowest common MSE is higher
    assert matched_mse(progress, pairs, budget=10).loc[0, "lipschitz_matched_kink_search"] == 5.0


def test_claim9_tiny_runs_with_the_search_switched_off_are_not_faster(cfg, th):
    """Kink-search runs whose searches never happen (every > budget) are the gradient-only runs:
    every ratio is 1, so no part can be supported."""
    c = copy.deepcopy(cfg)
    c.update(depths=[4], seeds=2, optimizer={**c["optimizer"], "iterations": 300}, snapshots=[100])
    c["data"] = {**c["data"], "points": 12}
    c["primary_seeds"] = {**c["primary_seeds"], "depths": []}
    c["updates"] = {
        **c["updates"],
        "depths": [4],
        "every": 1000,
        "targets": ["piecewise"],
        "intervals": ["narrow05"],
    }
    tables = {f"bias1d/{k}": v for k, v in study.run_shard(c, Shard({"depth": 4})).items()}
    setting = {"target": "piecewise", "depth": 4, "interval": "narrow05", "momentum": 0.99, "iterations": 300}
    parts = evaluate(9, tables, th, setting)
    assert all(p.verdict in (NOT_SUPPORTED, NOT_RUN) for p in parts) and combine(
        [p.verdict for p in parts]
    ) in (
        NOT_SUPPORTED,
        NOT_RUN,
    )
    for p in parts:
        if p.verdict != NOT_RUN:
            assert p.estimate == pytest.approx(1.0)


def test_claims_5_and_6_read_only_the_main_grid(th):
    tables = bias1d_tables()
    extra = updates_tables(seeds=3)
    both = {
        "bias1d/runs": pd.concat(
            [tables["bias1d/runs"].assign(main_grid=True, comparison=False), extra["bias1d/runs"]]
        ),
        "bias1d/snapshots": pd.concat([tables["bias1d/snapshots"], extra["bias1d/snapshots"]]),
    }
    for claim_id in (5, 6):
        alone = evaluate(claim_id, tables, th)
        mixed = evaluate(claim_id, both, th)
        assert [(p.estimate, p.ci_low, p.ci_high) for p in alone] == [
            (p.estimate, p.ci_low, p.ci_high) for p in mixed
        ]


def test_robustness_table_has_the_interval_bounds_kind_and_effective_time(cfg):
    c = copy.deepcopy(cfg)
    c.update(depths=[4], seeds=2, optimizer={**c["optimizer"], "iterations": 200}, snapshots=[100])
    c["data"] = {**c["data"], "points": 12}
    c["updates"] = {**c["updates"], "enabled": False}
    tables = study.run_shard(c, Shard({"depth": 4}))
    cells = summary.summary(tables)["robustness"]
    contract = ["target", "interval", "half_width", "depth", "momentum", "lr", "iterations", "runs",
                "fail_fraction", "diverged", "lipschitz_ok_fraction", "median_final_mse",
                "median_kink_drift_spacings"]  # fmt: skip
    assert set(contract + ["low", "high", "kind", "effective_time", "collapsed", "miss_fraction"]) <= set(
        cells
    )
    off = cells[cells["interval"].eq("off40") & cells["target"].eq("piecewise")].iloc[0]
    assert (off["low"], off["high"], off["kind"], off["knots_inside"]) == (0.3, 0.5, "offset, no knot", 0.0)
    sine = cells[cells["interval"].eq("narrow05") & cells["target"].eq("sine")].iloc[0]
    assert sine["kind"] == "centred" and np.isnan(sine["knots_inside"])
    np.testing.assert_allclose(
        cells["effective_time"], cells["lr"] / (1 - cells["momentum"]) * cells["iterations"]
    )
