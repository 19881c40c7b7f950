"""Claim verdicts on small synthetic tables: supported, not supported and not run for each claim."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.claims import (
    CLAIMS,
    COLUMNS,
    NOT_RUN,
    NOT_SUPPORTED,
    SUPPORTED,
    check_claims,
    claim1_critical_step,
    claim2_edge_of_stability,
    claim3_depth,
    claim4_double_vs_single,
    claim5_bias_drift,
    claim6_narrow_vs_wide,
    claim7_mnist_gap,
    read_table,
)
from pipeline.config import load_config


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def th(config):
    return config["report"]["claims"]


# --------------------------------------------------------------------- builders ---------


def scalar_table(random_converges_up_to=0.5, identity_converges_below=1.0, s=1.0, r=2.0):
    """Scalar runs on a grid of delta/delta*_L; identity converges below a ratio, random below another."""
    rows = []
    for depth in (1, 2, 4):
        dstar = 2.0 / (s * depth * abs(r) ** (2 * (depth - 1) / depth))
        for ratio in (0.3, 0.5, 0.85, 0.95, 1.05, 1.2):
            for init, seeds in (("identity", [0]), ("random", [0, 1, 2])):
                for seed in seeds:
                    limit = identity_converges_below if (init == "identity" or depth == 1) else None
                    ok = ratio < limit if limit is not None else ratio <= random_converges_up_to
                    rows.append(
                        dict(
                            study="scalar", run_id=f"{depth}-{ratio}-{init}-{seed}", seed=seed, depth=depth,
                            n=1, init=init, network="single", delta=ratio * dstar, iterations=1000,
                            status="converged" if ok else "oscillating", final_loss=1e-12 if ok else 0.5,
                            sharpness=(2.0 / (ratio * dstar)) * 0.99 if ok else np.nan, target=r,
                            data_scale=s, delta_star=dstar,
                        )
                    )  # fmt: skip
    return pd.DataFrame(rows)


def depth_table(identity_growth=1.0, random_growth=100.0):
    rows = []
    for depth in (2, 4, 8, 16):
        for init, growth in (("identity", identity_growth), ("orthogonal", 1.0), ("gaussian", random_growth)):
            for seed in range(3):
                loss = 1e-4 * growth ** np.log2(depth / 2)
                rows.append(
                    dict(
                        study="depth", run_id=f"{depth}-{init}-{seed}", seed=seed, depth=depth, n=10,
                        init=init, network="single", delta=0.01, iterations=500, status="not_converged",
                        final_loss=loss,
                        sharpness=np.nan, eig_low=0.2, eig_high=2.0,
                    )
                )  # fmt: skip
    return pd.DataFrame(rows)


def svd_table(double_faster=True, single_stalls=True, single_diverges=True):
    rows = []
    for seed in range(6):
        eig_min = -0.5 if seed < 3 else 0.3
        t_single = np.nan if (eig_min < 0 and single_stalls) else 400.0
        # the slow double network also fails to reach the tolerance where the single one stalls
        t_double = 200.0 if double_faster else (np.nan if eig_min < 0 else 800.0)
        status_s = "not_converged" if math.isnan(t_single) else "converged"
        if single_diverges and seed == 5:
            status_s, t_single = "diverged", np.nan
        status_d = "not_converged" if math.isnan(t_double) else "converged"
        for network, t, status in (("single", t_single, status_s), ("double", t_double, status_d)):
            rows.append(
                dict(
                    study="single_vs_double", run_id=f"{seed}-{network}", seed=seed, depth=4, n=10,
                    init="identity", network=network, delta=0.05, delta_rel=np.nan, iterations=1000,
                    status=status, final_loss=1e-9, sharpness=1.0, eig_low=-1.0, eig_high=1.0,
                    eig_min=eig_min, steps_to_tol=t,
                )
            )  # fmt: skip
    return pd.DataFrame(rows)


def bias_table(bias_drift=0.01, weight_drift=0.5, narrow_lip=0.9, narrow_fit=0.6, wide_fit=1.0):
    rows = []
    for interval, low, high, lip, fit in (
        ("narrow", -0.1, 0.1, narrow_lip, narrow_fit),
        ("wide", -2.0, 2.0, 3.0, wide_fit),
    ):
        for seed in range(4):
            rows.append(
                dict(
                    run_id=f"{interval}-{seed}", seed=seed, target="zigzag", depth=16, init_low=low,
                    init_high=high, interval=interval, final_mse=0.01, lipschitz=lip, target_lipschitz=1.0,
                    bias_drift_rel_median=bias_drift, bias_drift_rel_max=3 * bias_drift,
                    weight_drift_median=weight_drift, weight_drift_rel_median=weight_drift,
                    fitted_fraction=fit,
                )
            )  # fmt: skip
    return pd.DataFrame(rows)


def mnist_table(gaps=(0.2, 0.4, 0.3)):
    return pd.DataFrame(
        {
            "variant": "pair",
            "epoch": np.arange(1, len(gaps) + 1),
            "train_acc": [0.90 + 0.01 * i for i in range(len(gaps))],
            "test_acc": [0.90 + 0.01 * i - g / 100 for i, g in enumerate(gaps)],
            "train_loss": 0.1,
            "test_loss": 0.1,
            "seconds": 1.0,
            "images_per_s": 100.0,
        }
    )


# --------------------------------------------------------------------- claim 1 ----------


def test_claim1_supported(th):
    v = claim1_critical_step(scalar_table(), th)
    assert v.verdict == SUPPORTED, v.evidence
    assert "L=4: 0.95" in v.evidence and "0 converged runs above" in v.evidence


def test_claim1_not_supported_when_a_run_converges_above_delta_star(th):
    v = claim1_critical_step(scalar_table(identity_converges_below=1.1), th)
    assert v.verdict == NOT_SUPPORTED
    assert "converged runs above delta*_L" in v.evidence and "L=2: 1.05" in v.evidence


def test_claim1_not_supported_when_identity_is_far_from_delta_star(th):
    v = claim1_critical_step(scalar_table(identity_converges_below=0.6, random_converges_up_to=0.3), th)
    assert v.verdict == NOT_SUPPORTED and "not close" in v.evidence


def test_claim1_not_supported_when_random_converges_as_far_as_identity(th):
    v = claim1_critical_step(scalar_table(random_converges_up_to=0.95), th)
    assert v.verdict == NOT_SUPPORTED
    assert "below identity's in 0/2 (0%)" in v.evidence
    assert "not below for depth=2,target=2 (0.95 vs 0.95)" in v.evidence


def test_claim1_leaves_negative_targets_out_of_the_identity_parts(th):
    negative = scalar_table(r=-2.0)
    negative.loc[negative["init"].eq("identity"), ["status", "sharpness"]] = ["not_converged", np.nan]
    both = pd.concat([scalar_table(), negative], ignore_index=True)
    v = claim1_critical_step(both, th)
    assert v.verdict == SUPPORTED and "3 (L, r) groups with r < 0 left out" in v.evidence, v.evidence


def test_claim1_not_run(th):
    assert claim1_critical_step(None, th).verdict == NOT_RUN
    assert claim1_critical_step(scalar_table().drop(columns="delta_star"), th).verdict == NOT_RUN
    only_identity = scalar_table().query("init == 'identity'")
    v = claim1_critical_step(only_identity, th)
    assert v.verdict == NOT_RUN and "no random-init runs" in v.evidence


# --------------------------------------------------------------------- claim 2 ----------


def test_claim2_supported_and_counts_every_table(th):
    v = claim2_edge_of_stability({"scalar": scalar_table(), "depth": None, "single_vs_double": None}, th)
    assert v.verdict == SUPPORTED, v.evidence
    assert "max lambda_max*delta/2 = 0.99" in v.evidence


def test_claim2_not_supported_when_a_converged_run_is_sharper_than_2_over_delta(th):
    df = scalar_table()
    i = df.index[df["status"].eq("converged")][0]
    df.loc[i, "sharpness"] = 1.5 * 2 / df.loc[i, "delta"]
    v = claim2_edge_of_stability({"scalar": df, "depth": depth_table()}, th)
    assert v.verdict == NOT_SUPPORTED and "1 above" in v.evidence


def test_claim2_not_run(th):
    assert claim2_edge_of_stability({"scalar": None, "depth": None}, th).verdict == NOT_RUN
    # runs, but none converged
    assert claim2_edge_of_stability({"depth": depth_table()}, th).verdict == NOT_RUN


# --------------------------------------------------------------------- claim 3 ----------


def test_claim3_supported(th):
    v = claim3_depth(depth_table(), th)
    assert v.verdict == SUPPORTED, v.evidence
    assert "identity median final loss L=2: 0.0001 -> L=16: 0.0001" in v.evidence


def test_claim3_not_supported_when_identity_degrades(th):
    assert claim3_depth(depth_table(identity_growth=100.0), th).verdict == NOT_SUPPORTED


def test_claim3_not_supported_when_random_does_not_degrade(th):
    assert claim3_depth(depth_table(random_growth=1.5), th).verdict == NOT_SUPPORTED


def test_claim3_divergence_counts_as_degradation(th):
    df = depth_table(random_growth=1.0)
    deep = df["init"].eq("gaussian") & df["depth"].eq(16)
    df.loc[deep, "status"], df.loc[deep, "final_loss"] = "diverged", np.nan
    v = claim3_depth(df, th)
    assert v.verdict == SUPPORTED and "L=16: inf" in v.evidence


def test_claim3_not_run(th):
    assert claim3_depth(None, th).verdict == NOT_RUN
    assert claim3_depth(depth_table().query("init == 'identity'"), th).verdict == NOT_RUN


# --------------------------------------------------------------------- claim 4 ----------


def test_claim4_supported(th):
    v = claim4_double_vs_single(svd_table(), th)
    assert v.verdict == SUPPORTED, v.evidence
    assert "6/6 (100%) pairs" in v.evidence and "3/3 (100%) matrices" in v.evidence
    assert "1/6 pairs" in v.evidence
    # pairing by the study's pair_id gives the same
    with_ids = svd_table().assign(pair_id=lambda d: d["seed"].map("p{}".format), seed=range(12))
    assert claim4_double_vs_single(with_ids, th) == v


@pytest.mark.parametrize(
    "kwargs", [dict(double_faster=False), dict(single_stalls=False), dict(single_diverges=False)]
)
def test_claim4_not_supported_when_one_part_fails(th, kwargs):
    assert claim4_double_vs_single(svd_table(**kwargs), th).verdict == NOT_SUPPORTED


def test_claim4_not_run(th):
    assert claim4_double_vs_single(None, th).verdict == NOT_RUN
    assert claim4_double_vs_single(svd_table().drop(columns="steps_to_tol"), th).verdict == NOT_RUN
    positive = svd_table()
    positive["eig_min"] = 0.3
    v = claim4_double_vs_single(positive, th)
    assert v.verdict == NOT_RUN and "negative eigenvalue" in v.evidence


# --------------------------------------------------------------------- claims 5, 6 ------


def test_claim5(th):
    assert claim5_bias_drift(bias_table(), th).verdict == SUPPORTED
    assert claim5_bias_drift(bias_table(bias_drift=0.3, weight_drift=10.0), th).verdict == NOT_SUPPORTED
    assert claim5_bias_drift(bias_table(weight_drift=0.05), th).verdict == NOT_SUPPORTED
    assert claim5_bias_drift(None, th).verdict == NOT_RUN
    no_weight = bias_table().drop(columns="weight_drift_rel_median")
    assert claim5_bias_drift(no_weight, th).verdict == NOT_RUN


def test_claim6(th):
    v = claim6_narrow_vs_wide(bias_table(), th)
    assert v.verdict == SUPPORTED and "interval 'narrow' [-0.1, 0.1]: Lipschitz" in v.evidence, v.evidence
    assert claim6_narrow_vs_wide(bias_table(narrow_lip=1.5), th).verdict == NOT_SUPPORTED
    assert claim6_narrow_vs_wide(bias_table(narrow_fit=1.0), th).verdict == NOT_SUPPORTED
    assert claim6_narrow_vs_wide(bias_table(wide_fit=0.5), th).verdict == NOT_SUPPORTED
    assert claim6_narrow_vs_wide(None, th).verdict == NOT_RUN
    one_interval = bias_table().query("interval == 'wide'")
    assert claim6_narrow_vs_wide(one_interval, th).verdict == NOT_RUN


# --------------------------------------------------------------------- claim 7 ----------


def test_claim7(th):
    v = claim7_mnist_gap(mnist_table(), th)
    assert v.verdict == SUPPORTED and "0.40 points (epoch 2)" in v.evidence, v.evidence
    v = claim7_mnist_gap(mnist_table(gaps=(0.1, 3.0, 0.1)), th)
    assert v.verdict == NOT_SUPPORTED and "3.00 points" in v.evidence
    # a negative gap (test above train) counts by its size
    assert claim7_mnist_gap(mnist_table(gaps=(0.1, -5.0)), th).verdict == NOT_SUPPORTED
    # accuracies given in percent are read as such
    pct = mnist_table().assign(train_acc=lambda d: d.train_acc * 100, test_acc=lambda d: d.test_acc * 100)
    assert "0.40 points" in claim7_mnist_gap(pct, th).evidence
    assert claim7_mnist_gap(None, th).verdict == NOT_RUN


# --------------------------------------------------------------------- all --------------


def test_check_claims_table(th, tmp_path):
    tables = {
        "scalar": scalar_table(),
        "depth": depth_table(),
        "single_vs_double": svd_table(),
        "bias1d": bias_table(),
        "mnist": None,
    }
    claims = check_claims(tables, th)
    assert list(claims.columns) == COLUMNS
    assert claims["claim_id"].tolist() == list(range(1, 8))
    assert claims["claim"].tolist() == [CLAIMS[i] for i in range(1, 8)]
    assert claims["verdict"].tolist() == [SUPPORTED] * 6 + [NOT_RUN]
    assert claims["evidence"].map(lambda e: "\n" not in e and len(e) > 10).all()
    # nothing run at all: every claim says so, no error
    assert (check_claims({}, th)["verdict"] == NOT_RUN).all()
    # tables come back from Parquet the same
    path = tmp_path / "runs.parquet"
    tables["scalar"].to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), tables["scalar"])
    assert read_table(tmp_path / "missing.parquet") is None and read_table(None) is None
