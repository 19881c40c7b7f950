"""Controls of claims 1-4 (docs/claims.md): for every part, constructed runs tables on which it
must come out supported and others on which it must come out not supported."""

import numpy as np
import pandas as pd
import pytest

from pipeline.claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, all_claims
from pipeline.config import load_config
from pipeline.stability.claims import distinct_scalar_runs


@pytest.fixture(scope="module")
def th():
    return load_config({"report": {"claims": {"bootstrap": 400}}})["report"]["claims"]


def claim(claim_id):
    return next(c for c in all_claims() if c.claim_id == claim_id)


def parts(claim_id, tables, th, setting=None):
    c = claim(claim_id)
    got = c.evaluate(tables, c.primary(tables, th) if setting is None else setting, th)
    return {p.part: p for p in got}


def verdict(claim_id, part, tables, th, setting=None):
    return parts(claim_id, tables, th, setting)[part].verdict


# ------------------------------------------------------------------ claims 1 and 2 -----

RATIOS = (0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 1.01, 1.2)


def scalar_runs(
    seeds=10,
    identity_limit=1.0,
    random_limit=0.5,
    random_init="lognormal",
    converged_above=0,
    sharpness_margin=0.99,
    depths=(1, 2, 4),
    ratios=RATIOS,
):
    """Scalar runs on a grid of delta/delta*_L. The identity runs are the same run in every seed
    (as from the deterministic start on whitened data); a run converges when its ratio is
    below its init's limit (identity_limit, or random_limit for the random start at L >= 2);
    `converged_above` random-start runs above delta*_L are marked converged anyway. A converged
    run's sharpness is `sharpness_margin` * 2 / delta."""
    rows = []
    for depth in depths:
        dstar = 2.0 / (depth * 2.0 ** (2 * (depth - 1) / depth))
        for ratio in ratios:
            for init in ("identity", random_init):
                for seed in range(seeds):
                    limit = identity_limit if init == "identity" or depth == 1 else random_limit
                    ok = ratio < limit
                    delta = ratio * dstar
                    rows.append(
                        dict(
                            seed=seed, depth=depth, init=init, delta=delta, delta_star=dstar, target=2.0,
                            data_scale=1.0, status="converged" if ok else "oscillating",
                            sharpness=sharpness_margin * 2 / delta if ok else np.nan,
                            sharpness_residual=0.0,
                        )
                    )  # fmt: skip
    df = pd.DataFrame(rows)
    above = df.index[(df["delta"] > df["delta_star"]) & df["init"].ne("identity")][:converged_above]
    df.loc[above, "status"] = "converged"
    df.loc[above, "sharpness"] = sharpness_margin * 2 / df.loc[above, "delta"]
    return df


def scalar(df):
    return {"stability/scalar/runs": df}


def test_distinct_scalar_runs_counts_a_deterministic_run_once():
    df = scalar_runs(seeds=5)
    once = distinct_scalar_runs(df)
    ident = once[once["init"].eq("identity")]
    assert len(ident) == 3 * len(RATIOS)  # one per (depth, ratio), not one per seed
    assert once["init"].eq("lognormal").sum() == df["init"].eq("lognormal").sum()
    # with random data the data scale differs per seed: the identity runs are different runs
    random_data = df.assign(data_scale=1.0 + 0.01 * df["seed"])
    assert len(distinct_scalar_runs(random_data)) == len(random_data)


def test_claim1a_controls(th):
    # 3 depths x 2 steps above delta*_L x 700 seeds of the random start: 4,200 distinct runs, none
    # converged: the exact upper bound is below 0.001
    many = scalar_runs(seeds=700, ratios=(0.5, 1.01, 1.2))
    assert verdict(1, "a", scalar(many), th) == SUPPORTED
    assert verdict(
        1, "a", scalar(scalar_runs(seeds=700, ratios=(0.5, 1.01, 1.2), converged_above=40)), th
    ) == (NOT_SUPPORTED)
    # the identity runs repeated in 4,000 seeds are 6 distinct runs: too few to support the check
    ident = many[many["init"].eq("identity")]
    ident = pd.concat([ident.assign(seed=ident["seed"] + 1000 * k) for k in range(6)])
    got = parts(1, scalar(ident), th)["a"]
    assert got.verdict == INCONCLUSIVE and "of 6 distinct runs" in got.evidence


def test_claim1b_controls(th):
    got = parts(1, scalar(scalar_runs()), th)["b"]
    # identity converges up to 0.999 and not at 1.01: the grid's bracket, no sampling noise
    assert got.verdict == SUPPORTED and (got.estimate, got.ci_low, got.ci_high) == (0.999, 0.999, 1.01)
    got = parts(1, scalar(scalar_runs(identity_limit=0.6)), th)["b"]
    assert got.verdict == NOT_SUPPORTED and (got.ci_low, got.ci_high) == (0.5, 0.7)
    # a coarse grid cannot place the threshold: converged at 0.5, not at 0.9
    coarse = scalar_runs(identity_limit=0.6, ratios=(0.3, 0.5, 0.9, 1.2))
    assert verdict(1, "b", scalar(coarse), th) == INCONCLUSIVE


def test_claim1c_controls(th):
    assert verdict(1, "c", scalar(scalar_runs(random_limit=0.5)), th) == SUPPORTED
    # the random start as stable as identity: its largest convergent step is not below
    assert verdict(1, "c", scalar(scalar_runs(random_limit=1.0)), th) == NOT_SUPPORTED
    # judged on the configured start only: the built minimum `random` is not the generic start
    assert verdict(1, "c", scalar(scalar_runs(random_init="random")), th) == "not run"


def test_claim2_controls(th):
    many = scalar(scalar_runs(seeds=700, identity_limit=1.0, random_limit=1.0, ratios=(0.5, 0.9)))
    assert verdict(2, "a", many, th) == SUPPORTED
    # lambda_max * delta / 2 = 1.02 at convergence: breaks the bound
    bad = scalar(
        scalar_runs(seeds=700, identity_limit=1.0, random_limit=1.0, ratios=(0.5, 0.9), sharpness_margin=1.02)
    )
    assert verdict(2, "a", bad, th) == NOT_SUPPORTED
    # the identity runs count once: 1,400 of them are 6 distinct runs
    ident = many["stability/scalar/runs"]
    ident = ident[ident["init"].eq("identity")]
    got = parts(2, scalar(ident), th)["a"]
    assert got.verdict == INCONCLUSIVE and "of 6 distinct converged runs" in got.evidence


# ------------------------------------------------------------------ claim 3 ------------


def depth_runs(identity_growth=1.0, random_growth=1e4, seeds=8, base=1e-5, deep_identity_diverges=False):
    """Depth runs at the steps 0.5 * delta_T1 (delta_rel 0.5) and at one absolute step (0.02,
    delta_rel NaN): the loss grows by `growth` from L = 1 to L = 16."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for depth in (1, 4, 16):
            for init, growth in (("identity", identity_growth), ("gaussian", random_growth)):
                for delta, rel in ((0.5 / depth, 0.5), (0.02, np.nan)):
                    loss = base * growth ** (np.log2(depth) / 4) * rng.uniform(0.5, 2)
                    diverged = deep_identity_diverges and init == "identity" and depth == 16 and np.isnan(rel)
                    rows.append(
                        dict(
                            seed=seed, depth=depth, init=init, delta=delta, delta_rel=rel, final_loss=loss,
                            status="diverged" if diverged else "not_converged",
                        )
                    )  # fmt: skip
    return {"stability/depth/runs": pd.DataFrame(rows)}


def test_claim3_controls(th):
    assert verdict(3, "a", depth_runs(), th) == SUPPORTED
    assert verdict(3, "b", depth_runs(), th) == SUPPORTED
    assert verdict(3, "a", depth_runs(identity_growth=1e4), th) == NOT_SUPPORTED
    assert verdict(3, "b", depth_runs(random_growth=1.0), th) == NOT_SUPPORTED


def test_claim3_reports_the_statistic_without_its_floor(th):
    # every loss below the floor: floored, the statistic is 0 by construction; the evidence
    # gives the unfloored median (here 1e4 growth = +4 decades)
    got = parts(3, depth_runs(identity_growth=1e4, base=1e-12), th)["a"]
    assert got.estimate == 0.0
    assert "runs at the floor" in got.evidence
    unfloored = float(got.evidence.split("without the floor the median is ")[1].split(" ")[0])
    assert 3.0 < unfloored < 5.0


def test_claim3_region_cells(th):
    tables = depth_runs(deep_identity_diverges=True)
    grid = claim(3).grid(tables, th)
    assert grid == [{"step": "delta=0.02"}, {"step": "c=0.5"}]
    # at the absolute step the deep identity run diverges (above Theorem 1's bound): the cell fails
    assert verdict(3, "a", tables, th, {"step": "delta=0.02"}) == NOT_SUPPORTED
    assert verdict(3, "a", tables, th, {"step": "c=0.5"}) == SUPPORTED


# ------------------------------------------------------------------ claim 4 ------------


def svd_runs(
    seeds=12,
    double_faster=True,
    mixed_stall=1.0,
    positive_stall=0.0,
    single_unstable=0,
    double_unstable=0,
    unstable="oscillating",
):
    """Single/double pairs, depth 4, two steps, regimes mixed and positive. In each regime the
    first share `*_stall` of the seeds' single runs never reach the tolerance; the first
    `single_unstable` pairs (then `double_unstable`) have only that network `unstable`."""
    rows = []
    k = 0
    for regime, eig_min, stall in (("mixed", -0.5, mixed_stall), ("positive", 0.3, positive_stall)):
        for seed in range(seeds):
            for step, (delta, rel) in enumerate(((0.001, np.nan), (0.01, 1.0))):
                pair = f"{regime}{seed}_{step}"
                t_single = np.nan if seed < stall * seeds else 200.0
                t_double = 100.0 if double_faster else 300.0
                s_bad, d_bad = k < single_unstable, single_unstable <= k < single_unstable + double_unstable
                k += 1
                for network, t, bad in (("single", t_single, s_bad), ("double", t_double, d_bad)):
                    status = unstable if bad else "converged" if np.isfinite(t) else "not_converged"
                    rows.append(
                        dict(
                            pair_id=pair,
                            seed=seed,
                            depth=4,
                            regime=regime,
                            network=network,
                            eig_min=eig_min,
                            delta=delta,
                            delta_rel=rel,
                            status=status,
                            steps_to_tol=t if status == "converged" else np.nan,
                        )
                    )
    return {"stability/single_vs_double/runs": pd.DataFrame(rows)}


def test_claim4a_controls(th):
    got = parts(4, svd_runs(), th)["a"]
    # one outcome per matrix: 12 of 12, exact interval [0.735, 1]
    assert got.verdict == SUPPORTED and got.ci_high == 1.0 and 0.7 < got.ci_low < 0.76
    assert verdict(4, "a", svd_runs(double_faster=False), th) == NOT_SUPPORTED


def test_claim4b_controls(th):
    assert verdict(4, "b", svd_runs(mixed_stall=1.0, positive_stall=0.0), th) == SUPPORTED
    # the positive regime (no negative eigenvalue) stalls as often: a short budget, not the sign
    assert verdict(4, "b", svd_runs(mixed_stall=0.85, positive_stall=0.85), th) == NOT_SUPPORTED
    assert verdict(4, "b", svd_runs(mixed_stall=0.5, positive_stall=1.0), th) == NOT_SUPPORTED


def test_claim4c_controls(th):
    # the single network oscillates where the double converges: not stable by the declared rule
    assert verdict(4, "c", svd_runs(single_unstable=12), th) == SUPPORTED
    assert verdict(4, "c", svd_runs(single_unstable=12, unstable="diverged"), th) == SUPPORTED
    assert verdict(4, "c", svd_runs(double_unstable=12), th) == NOT_SUPPORTED
    # with oscillation declared stable, the same runs show no discordant pair
    lenient = {**th, "claim4_oscillation_unstable": False}
    got = parts(4, svd_runs(single_unstable=12), lenient)["c"]
    assert got.verdict != SUPPORTED and "single only 0, double only 0" in got.evidence


def test_claim4_every_depth_cell_has_every_part(th):
    tables = svd_runs()
    df = tables["stability/single_vs_double/runs"]
    tables = {
        "stability/single_vs_double/runs": pd.concat([df, df.assign(depth=8, pair_id=df["pair_id"] + "_L8")])
    }
    grid = claim(4).grid(tables, th)
    assert grid == [{"depth": 4}, {"depth": 8}]
    for cell in grid:
        assert set(parts(4, tables, th, cell)) == {"a", "b", "c"}
