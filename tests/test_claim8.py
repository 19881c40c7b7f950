"""Claim 8's controls (docs/claims.md): for each part, inputs on which it must say `supported`
and inputs on which it must say `not supported`; a tiny run with the curvature fresh at every
iterate vs the same rule with a stale one; and the engine's every-iterate curvature step
against a per-run loop with the exact Hessian of the scalar network."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.claims import NOT_RUN, NOT_SUPPORTED, SUPPORTED, evaluate_claim
from pipeline.stepsize import claims as c8
from pipeline.stepsize import model as ss
from tests.helpers import small_config
from tests.test_stepsize import descend, run_shard, shard, shard_cfg

pytestmark = pytest.mark.usefixtures("one_thread")
TH = small_config()["report"]["claims"]


def table(success, ratio=1.5, prior=0.5, oracle_grads=50, refresh=1):
    """One instance per seed: a fixed run and a curvature run (and a published AdGD run)."""
    rows = []
    for i, ok in enumerate(success):
        base = dict(problem="scalar", network="single", depth=2, seed=i, reachable=True, instance=i,
                    oracle_grads=oracle_grads, start_loss=1.0, peak_loss=1.0, prior_cost=1.0)  # fmt: skip
        rows.append({**base, "rule": "fixed", "setting": "grid", "refresh_every": 0, "status": "converged",
                     "cost_ratio": 1.0, "prior_ratio": 1.0})  # fmt: skip
        rows.append({**base, "rule": "curvature", "setting": "curvature", "refresh_every": refresh,
                     "status": "converged" if ok else "diverged", "cost_ratio": ratio if ok else np.nan,
                     "prior_ratio": prior if ok else np.inf})  # fmt: skip
        rows.append({**base, "rule": "adgd", "setting": "published", "refresh_every": 0,
                     "status": "converged", "cost_ratio": 3.0, "prior_ratio": 3.0})  # fmt: skip
    return pd.DataFrame(rows)


def verdicts(t, setting=None):
    claim = c8.CLAIMS[0]
    if setting is None:
        rows = evaluate_claim(claim, {"stepsize/runs": t}, TH)[0]
        return {r["part"]: r["verdict"] for r in rows}
    return {p.part: p.verdict for p in claim.evaluate({"stepsize/runs": t}, setting, TH)}


def test_part_a_converges_wherever_a_fixed_step_does():
    assert verdicts(table([True] * 10))["a"] == SUPPORTED
    assert verdicts(table([False] * 4 + [True] * 6))["a"] == NOT_SUPPORTED


def test_part_b_is_the_cost_against_the_best_fixed_step_on_non_trivial_instances():
    assert verdicts(table([True] * 10, ratio=1.5))["b"] == SUPPORTED
    assert verdicts(table([True] * 10, ratio=3.0))["b"] == NOT_SUPPORTED
    # trivial instances (the best fixed step needs fewer than the declared gradients) are left out
    few = TH["claim8_min_best_fixed_grads"] - 1
    assert verdicts(table([True] * 10, ratio=3.0, oracle_grads=few))["b"] == NOT_RUN


def test_part_c_is_the_cost_against_the_a_priori_fixed_step():
    assert verdicts(table([True] * 10, prior=0.5))["c"] == SUPPORTED
    assert verdicts(table([True] * 10, prior=2.0))["c"] == NOT_SUPPORTED
    # a curvature run that fails costs +inf: failing runs are never cheaper
    assert verdicts(table([False] * 10, prior=0.5))["c"] == NOT_SUPPORTED


def test_the_headline_is_the_rule_as_stated_and_lagged_runs_are_their_own_setting():
    fresh, stale = table([True] * 10), table([False] * 10, refresh=10)
    t = pd.concat([fresh, stale[stale["rule"] == "curvature"]], ignore_index=True)
    assert verdicts(t)["a"] == SUPPORTED
    assert (
        verdicts(t, {"problem": "all", "network": "all", "depth": 0, "refresh_every": 10})["a"]
        == NOT_SUPPORTED
    )


def test_a_fresh_curvature_converges_where_a_stale_one_diverges():
    """Identity start, L = 8, r = 2: the Hessian at the start is I, so the first step is about 13
    delta*; kept for 10 iterations it throws the run out, recomputed at every iterate it does not
    (mechanism on / off, real runs)."""
    cfg = shard_cfg(scalar={"seeds": 3, "iterations": 600, "inits": ["identity"], "targets": [2.0]})
    cfg["curvature"] = {**cfg["curvature"], "refresh_every": [1, 10]}
    runs = run_shard(cfg, shard("scalar", 8))["runs"]
    assert verdicts(runs, {"refresh_every": 1})["a"] == SUPPORTED
    assert (
        verdicts(runs, {"problem": "all", "network": "all", "depth": 0, "refresh_every": 10})["a"]
        == NOT_SUPPORTED
    )


def exact_curvature_descent(w0, r, sigma, iterations):
    """One scalar run, delta_t = sigma 2 / lambda_max(H(w_t)) with the exact Hessian (autograd)."""
    w = torch.tensor(w0, dtype=torch.float64)
    steps = []
    for _ in range(iterations):
        loss = lambda v: 0.5 * (v.prod() - r) ** 2  # noqa: E731
        lam = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, w)).max())
        delta = 2 * sigma / lam
        g = torch.autograd.functional.jacobian(loss, w)
        w = w - delta * g
        steps.append(delta)
    return w, steps


@pytest.mark.parametrize(
    ("w0", "r"), [([1.0, 1.0, 1.0, 1.0], 2.0), ([0.7, 1.3, 1.1], -0.5), ([1.5, 0.4], 1.0)]
)
def test_every_iterate_curvature_step_equals_an_exact_hessian_loop(w0, r):
    L, T = len(w0), 25
    R = torch.full((1, 1, 1), r, dtype=torch.float64)
    chains = [[torch.full((1, 1, 1), w, dtype=torch.float64) for w in w0]]
    # Lanczos with L steps on an L x L Hessian is exact (up to rounding)
    rules = ss.RuleSettings(sigma=0.5, iters=L, first_iters=L, warm_noise=0.1)
    res = descend(R, chains, [1], ["curvature"], [math.nan], [math.inf], T, rules=rules, tol=0.0,
                  log_points=T, refresh=[1])  # fmt: skip
    ref_w, ref_steps = exact_curvature_descent(w0, r, 0.5, T)
    got = [float(res.log_step[list(res.log_steps).index(t), 0]) for t in range(T) if t in set(res.log_steps)]
    want = [ref_steps[t] for t in range(T) if t in set(res.log_steps)]
    assert got == pytest.approx(want, rel=1e-8)
    final = torch.tensor([float(x.reshape(-1)[0]) for x in res.chains[0]], dtype=torch.float64)
    assert torch.allclose(final, ref_w, rtol=1e-8, atol=1e-10)
    assert res.hvps[0] == L * res.grads[0] > 0  # L Hessian-vector products at every iterate
