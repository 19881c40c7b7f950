"""Step-size study (docs/science.md section 6.1, claim 8): the rules, batching, curvature, shards."""

import math
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.claims import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, SUPPORTED, evaluate_claim
from pipeline.config import numbers
from pipeline.errors import UserError
from pipeline.linear import lanczos, network
from pipeline.linear.status import STATUSES, Monitoring
from pipeline.shard import Shard
from pipeline.stepsize import claims as c8
from pipeline.stepsize import figures as sf
from pipeline.stepsize import model as ss
from pipeline.stepsize.study import rule_settings, run_shard
from tests.helpers import small_config

# Small batched products run fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_thread")

CFG = numbers(small_config(), "stepsize", drop=("enabled",))
MON = replace(Monitoring.from_config(CFG), log_points=40)
MONITORING = {f.name for f in fields(Monitoring)}


def descend(R, chains, signs, rule, delta0, cap, iterations, **kw):
    """`model.descend` with the smoke config's settings; `kw` may override Monitoring's fields
    and `rules`."""
    mon = replace(MON, **{k: kw.pop(k) for k in list(kw) if k in MONITORING})
    rules = kw.pop("rules", rule_settings(CFG))
    return ss.descend(R, chains, signs, rule, delta0, cap, iterations, mon, rules=rules, **kw)


def shard(problem, depth):
    return Shard({"depth": depth} if problem == "basin" else {"problem": problem, "depth": depth})


def scalar_case(ws, r, B=1):
    """Targets [B, 1, 1] and one chain of scalar layers [B, 1, 1] from the weights `ws`."""
    R = torch.full((B, 1, 1), float(r), dtype=torch.float64)
    chains = [[torch.full((B, 1, 1), float(w), dtype=torch.float64) for w in ws]]
    return R, chains


def one_run(rule, ws, r, delta0=math.nan, cap=math.inf, iterations=1, **kw):
    R, chains = scalar_case(ws, r)
    return descend(R, chains, [1], [rule], [delta0], [cap], iterations, **kw)


def steps_taken(res, t):
    return res.log_step[list(res.log_steps).index(t), 0]


# ------------------------------------------------------------------- each rule's step ----


def test_fixed_step_is_w_minus_delta_gradient():
    res = one_run("fixed", [1.0, 2.0], 1.0, delta0=0.1)
    # l = (r - w1 w2)^2 / 2: dl/dw1 = -(r - P) w2 = 2, dl/dw2 = -(r - P) w1 = 1
    assert res.chains[0][0].item() == pytest.approx(1.0 - 0.1 * 2.0)
    assert res.chains[0][1].item() == pytest.approx(2.0 - 0.1 * 1.0)
    assert res.grads[0] == 1 and res.hvps[0] == 0 and res.loss_evals[0] == 0


def test_polyak_step_is_loss_over_squared_gradient_norm_and_capped():
    # L = 1, r = 2, w = 1: l = 1/2, g = -1, so delta = 0.5 / 1
    res = one_run("polyak", [1.0], 2.0, delta0=10.0, cap=10.0)
    assert steps_taken(res, 0) == pytest.approx(0.5)
    assert res.chains[0][0].item() == pytest.approx(1.5)
    capped = one_run("polyak", [1.0], 2.0, delta0=0.2, cap=0.2)
    assert steps_taken(capped, 0) == pytest.approx(0.2) and capped.cap_hits[0] == 1


def test_curvature_step_is_sigma_two_over_the_largest_hessian_eigenvalue():
    # L = 2 at (1, 2), r = 1: H = [[w2^2, 2P - r], [2P - r, w1^2]] = [[4, 3], [3, 1]]
    lam = (5 + math.sqrt(45)) / 2
    rules = ss.RuleSettings(sigma=0.5, iters=3, first_iters=8)
    res = one_run("curvature", [1.0, 2.0], 1.0, cap=1e6, rules=rules)
    assert steps_taken(res, 0) == pytest.approx(2 * 0.5 / lam, rel=1e-10)
    assert res.hvps[0] == 2  # the Krylov space of a 2 x 2 Hessian is exhausted after 2 steps
    # L = 1: H = 1, so sigma = 0.5 gives the Newton step, which lands on the target
    newton = one_run("curvature", [1.0], 2.0, cap=1e6, rules=rules)
    assert newton.chains[0][0].item() == pytest.approx(2.0)


def test_adgd_steps_follow_malitsky_mishchenko():
    # L = 1, r = 2, w0 = 1, delta_0 = 0.25: g0 = -1, w1 = 1.25, g1 = -0.75;
    # delta_1 = min(sqrt(1 + inf) 0.25, 0.25 / (2 * 0.25)) = 0.5, q_1 = 2, w2 = 1.625, g2 = -0.375;
    # delta_2 = min(sqrt(3) 0.5, 0.5 * 0.75 / (2 * 0.375)) = 0.5
    res = one_run("adgd", [1.0], 2.0, delta0=0.25, iterations=3)
    assert [steps_taken(res, t) for t in (0, 1, 2)] == pytest.approx([0.25, 0.5, 0.5])
    assert res.log_loss[list(res.log_steps).index(2), 0] == pytest.approx(0.5 * 0.375**2)


def test_armijo_backtracks_until_sufficient_decrease():
    # L = 1, r = 2, w = 1, trial 4: l(5) = 4.5, l(3) = 0.5 are rejected, l(2) = 0 is accepted
    rules = ss.RuleSettings(beta=0.5, c=1e-4, max_backtracks=30)
    for chunk in (1, 2, 16):
        res = one_run("armijo", [1.0], 2.0, delta0=4.0, rules=rules, armijo_chunk=chunk)
        assert steps_taken(res, 0) == pytest.approx(1.0)
        assert res.loss_evals[0] == 3 and res.chains[0][0].item() == pytest.approx(2.0)


# ------------------------------------------------------------------------ batching ----


def _mixed_batch(n, L, signs, seed=0):
    """One run per rule and a few step sizes on random targets and near-identity starts."""
    g = torch.Generator().manual_seed(seed)
    rules = ["fixed", "curvature", "polyak", "adgd", "armijo", "fixed", "adgd", "armijo", "polyak"]
    B = len(rules)
    R = torch.randn(B, n, n, dtype=torch.float64, generator=g)
    eye = torch.eye(n, dtype=torch.float64)
    chains = [
        [eye + 0.3 * torch.randn(B, n, n, dtype=torch.float64, generator=g) for _ in range(L)] for _ in signs
    ]
    delta0 = np.array([0.01, np.nan, 0.05, 0.01, 0.5, 50.0, 0.2, 2.0, 0.02])
    cap = np.array([np.inf, 1.0, 0.05, np.inf, np.inf, np.inf, np.inf, np.inf, 0.02])
    start = torch.randn(B, len(signs) * L * n * n, dtype=torch.float64, generator=g)
    return R, chains, rules, delta0, cap, start


@pytest.mark.parametrize(("n", "L", "signs"), [(1, 3, [1]), (3, 2, [1, -1])])
def test_batched_runs_equal_the_same_runs_one_by_one(n, L, signs):
    R, chains, rules, delta0, cap, start = _mixed_batch(n, L, signs)
    kw = {"tol": 1e-10, "tol_window": 5, "compact_every": 7}
    batch = descend(R, chains, signs, rules, delta0, cap, 150, start=start, **kw)
    assert "diverged" in set(batch.status)  # the fixed step of 50 blows up
    for b in range(len(rules)):
        one = descend(
            R[b : b + 1],
            [[w[b : b + 1] for w in ws] for ws in chains],
            signs,
            rules[b : b + 1],
            delta0[b : b + 1],
            cap[b : b + 1],
            150,
            start=start[b : b + 1],
            **kw,
        )
        assert one.status[0] == batch.status[b], rules[b]
        for field in ("final_loss", "grads", "hvps", "loss_evals", "last_step", "steps_to_tol"):
            np.testing.assert_allclose(getattr(one, field)[0], getattr(batch, field)[b], rtol=1e-9)
        np.testing.assert_allclose(one.log_loss[:, 0], batch.log_loss[:, b], rtol=1e-9)
        for wo, wb in zip(
            [w for c in one.chains for w in c], [w for c in batch.chains for w in c], strict=True
        ):
            np.testing.assert_allclose(wo[0].numpy(), wb[b].numpy(), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------- curvature ----


def _exact_lambda_max(R, chains, signs, b):
    n = R.shape[-1]
    sizes = [len(ws) for ws in chains]
    theta = torch.cat([w[b].reshape(-1) for ws in chains for w in ws])

    def f(t):
        parts = [p.reshape(1, n, n) for p in t.split(n * n)]
        nested, k = [], 0
        for s in sizes:
            nested.append(parts[k : k + s])
            k += s
        return network.loss(R[b : b + 1], nested, signs).sum()

    return float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta))[-1])


def test_lanczos_estimate_equals_the_exact_hessian_eigenvalue():
    g = torch.Generator().manual_seed(1)
    n, L, signs, B = 2, 3, [1, -1], 3
    R = torch.randn(B, n, n, dtype=torch.float64, generator=g)
    chains = [[torch.randn(B, n, n, dtype=torch.float64, generator=g) for _ in range(L)] for _ in signs]
    hvp, D = network.hessian_vector_product(R, chains, signs)
    q = torch.randn(B, D, dtype=torch.float64, generator=g)
    lam, vec, _, k = lanczos.lanczos(hvp, q, D)
    exact = [_exact_lambda_max(R, chains, signs, b) for b in range(B)]
    np.testing.assert_allclose(lam.numpy(), exact, rtol=1e-8)
    # warm start: after a small move of the weights, 3 steps from the old Ritz vector suffice
    moved = [[w + 1e-3 * torch.randn(B, n, n, dtype=torch.float64, generator=g) for w in ws] for ws in chains]
    hvp2, _ = network.hessian_vector_product(R, moved, signs)
    warm, _, _, k = lanczos.lanczos(hvp2, vec, 3)
    exact2 = [_exact_lambda_max(R, moved, signs, b) for b in range(B)]
    assert k == 3
    np.testing.assert_allclose(warm.numpy(), exact2, rtol=1e-4)
    # the final sharpness of the study (random starts, enough steps)
    sharp = lanczos.sharpness(R, chains, signs, iters=D, gen=torch.Generator().manual_seed(0))[0]
    np.testing.assert_allclose(sharp, exact, rtol=1e-8)


# -------------------------------------------------------------------------- shards ----

SMALL = {"seeds": 2, "iterations": 120}


def shard_cfg(**blocks):
    over = {"stepsize": {k: v for k, v in blocks.items()}}
    return numbers(small_config(over), "stepsize", drop=("enabled",))


def test_same_shard_twice_gives_identical_tables_with_the_columns_of_the_docs():
    cfg = shard_cfg(scalar=SMALL, matrix={**SMALL, "n": 3})
    for problem in ("scalar", "double"):
        a, b = run_shard(cfg, shard(problem, 3)), run_shard(cfg, shard(problem, 3))
        for name in ("runs", "curves"):
            pd.testing.assert_frame_equal(a[name], b[name])
        runs = a["runs"]
        assert runs["run_id"].is_unique and set(runs["status"]) <= set(STATUSES)
        for col in (
            "study", "run_id", "instance", "seed", "problem", "network", "depth", "n", "init", "rule",
            "delta_factor", "delta0", "delta_ref", "iterations", "status", "final_loss", "steps_to_tol",
            "grads", "hvps", "loss_evals", "cost", "last_step", "sharpness", "edge", "reachable",
            "oracle_cost", "cost_ratio", "setting", "refresh_every", "start_loss", "peak_loss",
            "oracle_grads", "prior_cost", "prior_ratio",
        ):  # fmt: skip
            assert col in runs, col
        curv = runs[runs["rule"] == "curvature"]
        instances, refresh = runs["instance"].nunique(), cfg["curvature"]["refresh_every"]
        assert curv["delta0"].isna().all() and len(curv) == instances * len(refresh)
        assert sorted(curv["refresh_every"].unique()) == sorted(refresh)
        assert (runs.loc[runs["rule"] != "curvature", "refresh_every"] == 0).all()
        published = runs[runs["setting"] == "published"]
        assert len(published) == instances * len(cfg["published"]["rules"])
        assert (runs["peak_loss"] >= runs["start_loss"]).all()  # the start counts
        assert (runs.loc[runs["rule"] == "fixed", "hvps"] == 0).all()
        assert set(a["curves"]["run_id"]) <= set(runs["run_id"])
    basins = run_shard(shard_cfg(basin={"points": 5, "iterations": 50}), shard("basin", 2))["basins"]
    assert len(basins) == 25 * (1 + 4 * 2) and basins["run_id"].is_unique


def test_huge_steps_give_diverged_rows_not_a_crash():
    cfg = shard_cfg(scalar={**SMALL, "inits": ["balanced"], "targets": [2.0]})
    cfg["factors"] = [1e4, 1e6]
    runs = run_shard(cfg, shard("scalar", 4))["runs"]
    fixed = runs[runs["rule"] == "fixed"]
    assert (fixed["status"] == "diverged").all() and fixed["sharpness"].isna().all()
    assert not runs["reachable"].any() and runs["cost_ratio"].isna().all()
    # AdGD's huge first step overshoots far past any fixed bound and then recovers: diverged
    # means a non-finite loss, so these runs count as what they end as, their peak recorded
    adgd = runs[(runs["rule"] == "adgd") & (runs["setting"] == "grid")]
    assert (adgd["peak_loss"] > 1e20).all() and adgd["status"].eq("converged").any()
    assert not adgd["status"].eq("diverged").any() and adgd["final_loss"].lt(1e-8).any()


def test_claim8_on_the_shard_tables():
    """The claim runs on a real shard's table (its controls: tests/test_claim8.py)."""
    th = small_config()["report"]["claims"]
    runs = run_shard(shard_cfg(scalar=SMALL), shard("scalar", 2))["runs"]
    rows, cells = evaluate_claim(c8.CLAIMS[0], {"stepsize/runs": runs}, th)
    assert [r["part"] for r in rows] == ["a", "b", "c", "all"]
    lagged = [k for k in small_config()["stepsize"]["curvature"]["refresh_every"] if k > 1]
    assert len(cells) == 1 + len(lagged)
    assert {r["verdict"] for r in rows} <= {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN}


def test_figure_constants_match_the_model():
    assert sf.RULES == ss.RULES and sf.STATUSES == STATUSES


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"factors": [1.0, 0.5]}, "stepsize.factors"),
        ({"rules": ["curvature", "polyak"]}, "stepsize.rules"),
        (
            {"matrix": {"families": [{"name": "a", "eigvec": "orthogonal", "low": 2.0, "high": 1.0}]}},
            "stepsize.matrix",
        ),
        ({"factors": [0.5, 2.0], "a_priori_factor": 2.0}, "figures.stepsize.reference_factor"),
        ({"factors": [0.5, 2.0]}, "stepsize.a_priori_factor"),
        ({"curvature": {"refresh_every": [2, 5]}}, "stepsize.curvature.refresh_every"),
    ],
)
def test_rules_between_keys_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        small_config({"stepsize": override})


# ------------------------------------------------------------------------ workflow ----


@pytest.mark.workflow
def test_smoke_run_writes_the_stepsize_tables_figures_and_claim_8(smoke_run):
    work, _ = smoke_run
    out = work / "results" / "stepsize"
    runs = pd.read_parquet(out / "runs.parquet")
    basins = pd.read_parquet(out / "basins.parquet")
    curves = pd.read_parquet(out / "curves.parquet")
    assert runs["run_id"].is_unique and basins["run_id"].is_unique
    assert set(runs["status"]) | set(basins["status"]) <= set(STATUSES)
    assert set(runs["problem"]) == {"scalar", "matrix"} and set(runs["network"]) == {"single", "double"}
    assert set(curves["run_id"]) <= set(runs["run_id"])
    assert len(pd.read_csv(out / "summary.csv")) > 0
    for name in ("success", "cost_depth", "basins"):
        for fmt in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{fmt}").stat().st_size > 0
    claims = pd.read_csv(work / "results" / "report" / "claims.csv")
    eight = claims[claims["claim_id"] == 8]
    assert (
        eight["part"].tolist() == ["a", "b", "c", "all"]
        and not eight.loc[eight["part"].eq("a"), "verdict"].eq(NOT_RUN).any()
    )
