"""Stability engine (docs/science.md sections 1-2): gradients, theory, statuses, batching, determinism."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.linear import lanczos, network, starts, theory
from pipeline.linear.descent import gradient_descent
from pipeline.linear.status import STATUSES, Monitoring
from pipeline.shard import Shard
from pipeline.stability.study import run_shard
from tests.helpers import dry_run, small_config

# Small batched matmuls run fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_thread")

# The engine settings of config.yaml, with a shorter oscillation window for short runs.
ENGINE = small_config({"stability": {"log_points": 20, "oscillation": {"window": 100}}})["stability"]
MON = Monitoring.from_config(ENGINE)


def sharpness(R, chains, signs, sigma=None, iters=20):
    """lambda_max and residual as the stability study computes them (seed 0)."""
    return lanczos.sharpness(R, chains, signs, sigma, iters=iters, gen=torch.Generator().manual_seed(0))


def shard(experiment, depth):
    return Shard({"experiment": experiment, "depth": depth})


def _random_case(B=4, n=3, L=3, chains=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(B, n, n, dtype=torch.float64, generator=g)
    X = torch.randn(B, n, 7, dtype=torch.float64, generator=g)
    sigma = X @ X.mT / 7
    ws = [[torch.randn(B, n, n, dtype=torch.float64, generator=g) for _ in range(L)] for _ in range(chains)]
    return R, sigma, ws


@pytest.mark.parametrize("n, L, signs", [(3, 3, [1, -1]), (4, 1, [1]), (1, 5, [1]), (1, 2, [1, -1])])
@pytest.mark.parametrize("whitened", [True, False])
def test_the_engines_hand_written_step_is_a_gradient_step_by_autograd(n, L, signs, whitened):
    R, sigma, ws = _random_case(n=n, L=L, chains=len(signs))
    sigma = None if whitened else sigma
    params = [w.clone().requires_grad_(True) for c in ws for w in c]
    nested = [params[i * L : (i + 1) * L] for i in range(len(signs))]
    auto = torch.autograd.grad(network.loss(R, nested, signs, sigma).sum(), params)
    _, grads = network.loss_and_gradients(R, ws, signs, sigma)
    for a, g in zip(auto, [g for c in grads for g in c], strict=True):
        torch.testing.assert_close(g, a, rtol=1e-12, atol=1e-12)
    # one engine step is W - delta * grad, with a different delta per run
    delta = torch.tensor([0.01, 0.02, 0.005, 0.0], dtype=torch.float64)
    res = gradient_descent(R, ws, signs, delta, 1, MON, sigma=sigma)
    for w0, a, w1 in zip([w for c in ws for w in c], auto, [w for c in res.chains for w in c], strict=True):
        torch.testing.assert_close(w1, w0 - delta.reshape(-1, 1, 1) * a, rtol=1e-12, atol=1e-12)


def test_sharpness_equals_largest_eigenvalue_of_the_full_hessian():
    R, sigma, ws = _random_case(B=3, n=2, L=3, chains=2, seed=1)
    lam, residual = sharpness(R, ws, [1, -1], sigma, iters=30)
    assert (residual < 1e-6 * lam).all()  # 30 steps exhaust the 24-dimensional Krylov space
    for b in range(3):
        theta = torch.cat([w[b].reshape(-1) for c in ws for w in c])

        def f(t, b=b):
            parts = t.split(4)
            nested = [[p.reshape(1, 2, 2) for p in parts[:3]], [p.reshape(1, 2, 2) for p in parts[3:]]]
            return network.loss(R[b : b + 1], nested, [1, -1], sigma[b : b + 1]).sum()

        H = torch.autograd.functional.hessian(f, theta)
        assert lam[b] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-8)


def test_theory_functions():
    assert theory.delta_star(1, 3.0, 2.0) == pytest.approx(1.0)  # 2 / (s L |r|^0)
    assert theory.delta_star(4, 2.0, 1.0) == pytest.approx(2 / (4 * 2.0**1.5))
    w = np.full(5, 0.7 ** (1 / 5))
    assert theory.minimum_sharpness(w, 0.7) == pytest.approx(theory.balanced_sharpness(5, 0.7))
    unbalanced = w * np.exp([0.3, -0.3, 0.1, -0.1, 0.0])
    assert theory.minimum_sharpness(unbalanced, 0.7) > theory.balanced_sharpness(5, 0.7)  # AM-GM
    assert theory.delta_t1(8, 0.5) == pytest.approx(1 / 8)
    assert theory.delta_t1(8, 2.0) == pytest.approx(1 / (8 * 2 ** (14 / 8)))
    assert theory.delta_relative(0.5, 8, 2.0) == pytest.approx(0.5 * theory.delta_t1(8, 2.0))


@pytest.mark.parametrize("L", [1, 2, 4, 8])
@pytest.mark.parametrize("r", [0.5, 2.0])
def test_balanced_start_converges_below_and_not_above_delta_star(L, r):
    factors = np.array([0.5, 0.8, 0.9, 1.1, 1.3, 2.0])
    B = len(factors) * 3
    g = torch.Generator().manual_seed(L)
    w0 = torch.stack([starts.init_scalar("balanced", L, r, g, 0.05, 0.0) for _ in range(B)])
    chains = [[w0[:, j].reshape(B, 1, 1).clone() for j in range(L)]]
    R = torch.full((B, 1, 1), r, dtype=torch.float64)
    delta = torch.tensor(np.repeat(factors, 3) * theory.delta_star(L, r), dtype=torch.float64)
    res = gradient_descent(R, chains, [1], delta, 3000, MON)
    status = res.status.reshape(len(factors), 3)
    assert (status[factors <= 0.9] == "converged").all()
    assert (status[factors >= 1.1] != "converged").all()
    # at convergence the sharpness is at most 2/delta (and the flattest minimum's value)
    lam, _ = sharpness(R, res.chains, [1])
    conv = res.status == "converged"
    assert (lam[conv] <= 2 / delta.numpy()[conv] * (1 + 1e-9)).all()
    assert lam[conv] == pytest.approx(theory.balanced_sharpness(L, r) * np.ones(conv.sum()), rel=0.05)


def test_identity_init_converges_on_spd_target_at_0p9_delta_t1():
    g = torch.Generator().manual_seed(3)
    t = [starts.random_target(10, 0.2, 2.0, "orthogonal", g) for _ in range(3)]
    R = torch.stack([x.R for x in t])
    L = 8
    delta = torch.tensor([0.9 * theory.delta_t1(L, x.rho) for x in t], dtype=torch.float64)
    chains = [[torch.eye(10, dtype=torch.float64).expand(3, 10, 10).clone() for _ in range(L)]]
    res = gradient_descent(R, chains, [1], delta, 1500, replace(MON, tol=1e-16))
    assert (res.status == "converged").all(), res.final_loss


def test_negative_eigenvalue_stalls_the_single_network_but_not_the_double():
    R = torch.diag(torch.tensor([1.5, 0.5, -0.5], dtype=torch.float64)).unsqueeze(0)
    L, delta = 4, torch.tensor([0.05], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    single = gradient_descent(R, [[eye.clone() for _ in range(L)]], [1], delta, 4000, MON)
    double = gradient_descent(
        R, [[eye.clone() for _ in range(L)] for _ in range(2)], [1, -1], delta, 4000, MON
    )
    assert single.status[0] == "not_converged" and single.final_loss[0] > 0.1  # ~ (0.5)^2 / 2 left
    assert double.status[0] == "converged"


def test_batched_runs_equal_the_same_runs_one_by_one():
    R, sigma, ws = _random_case(B=5, n=3, L=4, chains=2, seed=2)
    ws = [[0.3 * w + torch.eye(3, dtype=torch.float64) for w in c] for c in ws]
    delta = torch.tensor([1e-3, 5e-3, 1e-2, 2e-2, 1e3], dtype=torch.float64)
    batch = gradient_descent(R, ws, [1, -1], delta, 200, MON, sigma=sigma)
    for b in range(5):
        one = gradient_descent(
            R[b : b + 1],
            [[w[b : b + 1] for w in c] for c in ws],
            [1, -1],
            delta[b : b + 1],
            200,
            MON,
            sigma=sigma[b : b + 1],
        )
        assert one.status[0] == batch.status[b]
        np.testing.assert_allclose(one.final_loss[0], batch.final_loss[b], rtol=1e-12)
        np.testing.assert_allclose(one.log_loss[:, 0], batch.log_loss[:, b], rtol=1e-12)
    assert batch.status[4] == "diverged"


def stability_config(part: str, **block) -> dict:
    """The stability block of the smoke config with `block` overriding the part's keys (and the
    claims and figure settings that name its grid following it)."""
    follow = {}
    if "regimes" in block:
        name = block["regimes"][0]["name"]
        follow = {
            "report": {"claims": {"claim4_speed_regime": name, "claim4_stall_regime": name}},
            "figures": {"stability": {"typical": {"regime": name}}},
        }
    return small_config({"stability": {part: block}}, follow)["stability"]


SMALL = dict(data="random", n_points=20, delta_min=0.01, delta_max=5.0, delta_num=6, seeds=2, iterations=300)


def test_same_shard_twice_gives_identical_tables_with_contract_columns():
    cfg = stability_config("scalar", **SMALL)
    a_runs, a_curves = run_shard(cfg, shard("scalar", 3)).values()
    b_runs, b_curves = run_shard(cfg, shard("scalar", 3)).values()
    pd.testing.assert_frame_equal(a_runs, b_runs)
    pd.testing.assert_frame_equal(a_curves, b_curves)
    for col in ["study", "run_id", "seed", "depth", "n", "init", "network", "delta", "iterations", "status"]:
        assert col in a_runs
    for col in ["final_loss", "sharpness", "target", "data_scale", "delta_star"]:
        assert col in a_runs
    assert a_runs["run_id"].is_unique and set(a_runs["status"]) <= set(STATUSES)
    assert list(a_curves.columns[:5]) == ["study", "experiment", "run_id", "step", "loss"]
    assert set(a_runs["study"]) == {"stability"} and set(a_runs["experiment"]) == {"scalar"}


def test_huge_steps_give_diverged_rows_not_a_crash():
    cfg = stability_config("scalar", **{**SMALL, "delta_min": 1e3, "delta_max": 1e6, "delta_factors": [1e4]})
    runs = run_shard(cfg, shard("scalar", 4))["runs"]
    assert len(runs) == 2 * len(cfg["scalar"]["inits"]) * 7 * 2
    assert (runs["status"] == "diverged").all() and runs["sharpness"].isna().all()
    cfg = stability_config(
        "single_vs_double", n=4, regimes=[dict(name="mixed", low=-1.0, high=1.0)], deltas=[1e4], seeds=2
    )
    cfg["single_vs_double"]["delta_rel"] = [1e5]  # not in the figure settings' grid: no validation
    cfg["single_vs_double"]["iterations"] = 50
    runs = run_shard(cfg, shard("single_vs_double", 3))["runs"]
    assert len(runs) == 2 * 2 * 2 and (runs["status"] == "diverged").all()
    for col in [
        "rho",
        "sigma_max",
        "cond_eigvec",
        "eig_low",
        "eig_high",
        "delta_rel",
        "eig_min",
        "steps_to_tol",
    ]:
        assert col in runs


def test_negative_step_size_fails_the_dry_run_naming_the_key(workflow_copy, tmp_path):
    proc = dry_run(workflow_copy, {"stability": {"depth": {"deltas": [0.005, -0.1]}}}, tmp_path)
    assert proc.returncode != 0
    assert "stability.depth.deltas.1" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_smoke_run_writes_the_stability_tables_and_figures(smoke_run):
    work, _ = smoke_run
    out = work / "results" / "stability"
    for study in ("scalar", "depth", "single_vs_double"):
        runs = pd.read_parquet(out / study / "runs.parquet")
        curves = pd.read_parquet(out / study / "curves.parquet")
        assert runs["run_id"].is_unique and set(runs["status"]) <= set(STATUSES)
        assert set(curves["run_id"]) <= set(runs["run_id"])
        assert {
            "study",
            "run_id",
            "seed",
            "depth",
            "n",
            "init",
            "network",
            "delta",
            "final_loss",
            "sharpness",
        } <= set(runs.columns)
    scalar = pd.read_parquet(out / "scalar" / "runs.parquet")
    conv = scalar[scalar["status"] == "converged"]
    assert len(conv) > 0 and (conv["sharpness"] <= conv["two_over_delta"] * (1 + 1e-6)).all()
    svd = pd.read_parquet(out / "single_vs_double" / "runs.parquet")
    assert set(svd["network"]) == {"single", "double"} and svd["eig_min"].notna().all()
    for name in ("phase_diagram", "sharpness", "depth", "single_vs_double"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
