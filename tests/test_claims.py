"""Verdicts: the interval machinery, and every claim on synthetic tables where the answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import stats
from pipeline.claims import (
    COLUMNS,
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    SUPPORTED,
    Part,
    all_claims,
    check_claims,
    claims_markdown,
    combine,
    judge,
)
from pipeline.config import load_config
from tests.test_claims_bias1d import bias1d_tables


@pytest.fixture(scope="module")
def th():
    return load_config({"report": {"claims": {"bootstrap": 400}}})["report"]["claims"]


def verdicts(parts: list[Part]) -> dict[str, str]:
    return {p.part: p.verdict for p in parts}


def claim(claim_id):
    return next(c for c in all_claims() if c.claim_id == claim_id)


def evaluate(claim_id, tables, th, setting=None):
    c = claim(claim_id)
    return c.evaluate(tables, c.primary(tables, th) if setting is None else setting, th)


# ------------------------------------------------------------------ machinery ----------


@pytest.mark.parametrize(
    ("low", "high", "side", "verdict", "flip"),
    [
        (0.6, 0.8, ">", SUPPORTED, 0.6),
        (0.2, 0.4, ">", NOT_SUPPORTED, 0.4),
        (0.4, 0.8, ">", INCONCLUSIVE, 0.4),
        (0.2, 0.4, "<", SUPPORTED, 0.4),
        (0.6, 0.8, "<=", NOT_SUPPORTED, 0.6),
        (0.5, 0.8, ">=", SUPPORTED, 0.5),
        (0.5, 0.8, ">", INCONCLUSIVE, 0.5),
        (math.nan, 0.8, ">", NOT_RUN, math.nan),
    ],
)
def test_judge(low, high, side, verdict, flip):
    got, flip_at = judge(low, high, 0.5, side)
    assert got == verdict
    assert flip_at == pytest.approx(flip, nan_ok=True)


def test_combine():
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE]) == NOT_SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, NOT_RUN]) == INCONCLUSIVE
    assert combine([NOT_RUN, NOT_RUN]) == NOT_RUN == combine([])


def test_clopper_pearson_known_values_and_sign_test():
    assert stats.clopper_pearson(0, 10) == pytest.approx((0.0, 0.30849710781876083), abs=1e-9)
    assert stats.clopper_pearson(5, 10) == pytest.approx((0.18708602844739, 0.81291397155261), abs=1e-9)
    assert stats.clopper_pearson(10, 10)[0] == pytest.approx(0.6915028921812371, abs=1e-9)
    share, low, high, p = stats.sign_test(30, 5)
    assert share == pytest.approx(30 / 35) and low > 0.5 and p < 1e-4
    share, low, high, p = stats.sign_test(1, 2)
    assert low < 0.5 < high and p == pytest.approx(1.0)


def test_bootstraps_agree_with_each_other_and_cover_the_estimate():
    rng = np.random.default_rng(0)
    seeds = np.repeat(np.arange(20), 5)
    x = rng.normal(size=100)
    df = pd.DataFrame({"seed": seeds, "x": x})
    generic = stats.bootstrap(df, lambda d: d["x"].median(), key=(1,))
    assert stats.bootstrap_median(x, seeds, key=(1,)) == pytest.approx(generic)
    hit = x > 0.5
    est, low, high = stats.bootstrap_share(hit, seeds, key=(2,))
    assert est == pytest.approx(hit.mean()) and low < est < high
    # fewer than two seeds: no interval
    assert math.isnan(stats.bootstrap_share(hit[:5], seeds[:5])[1])
    # a difference of identical shares straddles zero
    est, low, high = stats.bootstrap_share_difference(hit, seeds, hit, seeds, key=(3,))
    assert est == 0 and low <= 0 <= high


# ------------------------------------------------------------------ claims 1-4 ---------


def scalar_table(random_limit=0.5, identity_limit=1.0, converged_above=0, seeds=6):
    """Scalar runs on a grid of delta/delta*_L: identity converges below identity_limit, random
    below random_limit; `converged_above` runs above delta*_L are marked converged anyway."""
    rows = []
    for depth in (1, 2, 4):
        dstar = 2.0 / (depth * 2.0 ** (2 * (depth - 1) / depth))
        for ratio in (0.3, 0.5, 0.85, 0.95, 1.05, 1.2):
            for init in ("identity", "lognormal"):
                for seed in range(seeds):
                    limit = identity_limit if init == "identity" or depth == 1 else random_limit
                    ok = ratio < limit
                    rows.append(
                        dict(
                            seed=seed, depth=depth, init=init, delta=ratio * dstar, delta_star=dstar,
                            target=2.0, data_scale=1.0, status="converged" if ok else "oscillating",
                            sharpness=0.99 * 2 / (ratio * dstar) if ok else np.nan, sharpness_residual=0.0,
                        )
                    )  # fmt: skip
    df = pd.DataFrame(rows)
    above = df.index[df["delta"] > df["delta_star"]][:converged_above]
    df.loc[above, "status"] = "converged"
    return df


def test_claim1(th):
    assert verdicts(evaluate(1, {"stability/scalar/runs": scalar_table()}, th)) == {
        "a": INCONCLUSIVE,
        "b": SUPPORTED,
        "c": SUPPORTED,
    }
    # with many runs above delta*_L and none converging, the check (a) holds
    many = pd.concat([scalar_table().assign(seed=lambda d, k=k: d["seed"] + 100 * k) for k in range(200)])
    assert verdicts(evaluate(1, {"stability/scalar/runs": many}, th))["a"] == SUPPORTED
    assert (
        verdicts(evaluate(1, {"stability/scalar/runs": scalar_table(converged_above=40)}, th))["a"]
        == NOT_SUPPORTED
    )
    assert (
        verdicts(evaluate(1, {"stability/scalar/runs": scalar_table(identity_limit=0.4)}, th))["b"]
        == NOT_SUPPORTED
    )
    # converging up to 0.5 and not at 0.85: the grid's bracket [0.5, 0.85] straddles 0.8
    assert (
        verdicts(evaluate(1, {"stability/scalar/runs": scalar_table(identity_limit=0.6)}, th))["b"]
        == INCONCLUSIVE
    )
    assert (
        verdicts(evaluate(1, {"stability/scalar/runs": scalar_table(random_limit=1.0)}, th))["c"]
        == NOT_SUPPORTED
    )


def test_claim2_uses_the_lanczos_residual(th):
    df = scalar_table()
    assert verdicts(evaluate(2, {"stability/scalar/runs": df}, th)) == {
        "a": INCONCLUSIVE
    }  # 126 runs: CP high > 0.001
    conv = df["status"].eq("converged")
    bad = df.assign(sharpness_residual=np.where(conv, 0.05 * df["sharpness"], 0.0))  # pushes 0.99 to 1.04
    parts = evaluate(2, {"stability/scalar/runs": bad}, th)
    assert parts[0].verdict == NOT_SUPPORTED and parts[0].estimate == 1.0


def depth_table(identity_growth=1.0, random_growth=1e4, seeds=8):
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for depth in (1, 4, 16):
            for init, growth in (("identity", identity_growth), ("gaussian", random_growth)):
                loss = 1e-5 * growth ** (np.log2(depth) / 4) * rng.uniform(0.5, 2)
                rows.append(
                    dict(
                        seed=seed,
                        depth=depth,
                        init=init,
                        delta=0.005,
                        delta_rel=0.5,  # a step 0.5 * delta_T1(L, rho): the headline setting
                        final_loss=loss,
                        status="not_converged",
                        sharpness=np.nan,
                        sharpness_residual=np.nan,
                    )
                )
    return pd.DataFrame(rows)


def test_claim3(th):
    assert verdicts(evaluate(3, {"stability/depth/runs": depth_table()}, th)) == {
        "a": SUPPORTED,
        "b": SUPPORTED,
    }
    assert (
        verdicts(evaluate(3, {"stability/depth/runs": depth_table(identity_growth=1e4)}, th))["a"]
        == NOT_SUPPORTED
    )
    assert (
        verdicts(evaluate(3, {"stability/depth/runs": depth_table(random_growth=1.0)}, th))["b"]
        == NOT_SUPPORTED
    )
    # a diverged deep run counts as the worst loss
    diverged = depth_table()
    diverged.loc[(diverged["depth"] == 16) & (diverged["init"] == "identity"), "status"] = "diverged"
    assert verdicts(evaluate(3, {"stability/depth/runs": diverged}, th))["a"] == NOT_SUPPORTED


def svd_table(double_faster=True, single_only_diverges=8, double_only_diverges=0, seeds=10):
    rows = []
    for regime, eig_min in (("mixed", -0.5), ("positive", 0.3)):
        for seed in range(seeds):
            pair = f"{regime}{seed}"
            t_single = np.nan if regime == "mixed" else 200.0
            t_double = 100.0 if double_faster else 300.0
            s_div = seed < single_only_diverges // 2
            d_div = single_only_diverges // 2 <= seed < (single_only_diverges + double_only_diverges) // 2
            for network, t, div in (("single", t_single, s_div), ("double", t_double, d_div)):
                rows.append(
                    dict(pair_id=pair, seed=seed, depth=4, regime=regime, network=network, eig_min=eig_min,
                         delta=0.001, delta_rel=np.nan,
                         status="diverged" if div else "converged" if np.isfinite(t) else "not_converged",
                         steps_to_tol=np.nan if div else t)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_claim4(th):
    assert verdicts(evaluate(4, {"stability/single_vs_double/runs": svd_table()}, th)) == {
        "a": SUPPORTED,
        "b": SUPPORTED,
        "c": SUPPORTED,
    }
    got = verdicts(
        evaluate(
            4, {"stability/single_vs_double/runs": svd_table(double_faster=False, single_only_diverges=0)}, th
        )
    )
    assert got["a"] == NOT_SUPPORTED
    # divergence in both directions: the sign test cannot tell
    parts = evaluate(
        4, {"stability/single_vs_double/runs": svd_table(single_only_diverges=4, double_only_diverges=4)}, th
    )
    assert parts[2].verdict == INCONCLUSIVE and parts[2].estimate == 0.5
    # the robustness cells are depths, and every part exists in each (part (b) compares the
    # regimes, so a cell of one regime would have none)
    c4 = claim(4)
    tables = {"stability/single_vs_double/runs": svd_table()}
    assert c4.grid(tables, th) == [{"depth": 4}]
    assert set(verdicts(evaluate(4, tables, th, {"depth": 4}))) == {"a", "b", "c"}


# ------------------------------------------------------------------ claim 7 ------------
# (claims 5, 6 and 9: tests/test_claims_bias1d.py)


def mnist_table(pair_gap=0.3, baseline_gap=3.0, seeds=(0, 1, 2)):
    rows = []
    for variant, gap in (("pair", pair_gap), ("plain_mlp", baseline_gap)):
        for seed in seeds:
            for epoch in range(1, 6):
                train = 0.9 + 0.015 * epoch
                rows.append(
                    dict(
                        variant=variant,
                        seed=seed,
                        epoch=epoch,
                        train_acc=train,
                        test_acc=train - gap / 100 * (1 + 0.1 * seed),
                    )
                )
    return pd.DataFrame(rows)


def test_claim7(th):
    assert verdicts(evaluate(7, {"mnist/metrics": mnist_table()}, th)) == {"a": SUPPORTED, "b": SUPPORTED}
    got = verdicts(evaluate(7, {"mnist/metrics": mnist_table(pair_gap=5.0, baseline_gap=1.0)}, th))
    assert got == {"a": NOT_SUPPORTED, "b": NOT_SUPPORTED}
    # one seed gives no interval: the parts are not run, not decided by a point estimate
    one = verdicts(evaluate(7, {"mnist/metrics": mnist_table(seeds=(0,))}, th))
    assert one == {"a": NOT_RUN, "b": NOT_RUN}


def test_check_claims_table_robustness_and_not_run(th):
    tables = {
        "stability/scalar/runs": scalar_table(),
        "stability/depth/runs": depth_table(),
        **bias1d_tables(),
        "mnist/metrics": mnist_table(),
    }
    claims, robustness = check_claims(tables, th)
    assert list(claims.columns) == COLUMNS
    summary = claims[claims["part"].eq("all")]
    assert summary["claim_id"].tolist() == [c.claim_id for c in all_claims()]
    assert set(claims["verdict"]) <= {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN}
    # the single_vs_double table is absent: claim 4 is not run, with no robustness cells
    assert summary.set_index("claim_id").loc[4, "verdict"] == NOT_RUN
    assert not (robustness["claim_id"] == 4).any()
    # claim 3's grid is the depth table's steps; its parts count the settings where they hold
    three = claims[claims["claim_id"].eq(3)].set_index("part")
    assert three.loc["all", "settings_total"] == 1 and three.loc["a", "settings_supported"] == 1
    assert (robustness[robustness["claim_id"] == 3]["setting"] == '{"step": "c=0.5"}').all()


def test_claims_markdown_has_one_row_per_claim_with_its_parts(th):
    tables = {
        "stability/scalar/runs": scalar_table(),
        "stability/depth/runs": depth_table(),
        **bias1d_tables(),
        "mnist/metrics": mnist_table(),
    }
    claims, _ = check_claims(tables, th)
    rows = claims_markdown(claims).splitlines()
    assert len(rows) == 2 + len(all_claims()) and all(r.startswith("| ") for r in rows)
    by_id = {int(r.split(".")[0][2:]): r for r in rows[2:]}
    assert sorted(by_id) == [c.claim_id for c in all_claims()]
    three = claims[claims["claim_id"].eq(3)].set_index("part")
    a = three.loc["a"]
    assert f"**{three.loc['all', 'verdict']}**" in by_id[3]
    assert f"(a) {a['verdict']} " in by_id[3] and f"needs {a['side']} " in by_id[3]
    assert "1 of 1 settings" in by_id[3]
    assert "no " in by_id[4] and "**not run**" in by_id[4]  # its table is absent: the reason instead
