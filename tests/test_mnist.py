"""MNIST residual-pair model: batched == per-network, convexity, training, resume, errors."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from pipeline.data import load_mnist
from pipeline.errors import UserError
from pipeline.mnist.model import ResidualPairs, feature_size, reference_scores, resolve_device
from pipeline.mnist.train import CHECKPOINT, train
from tests.helpers import REPO, dry_run, make_fake_mnist, small_config

# The mnist block of the smoke config, shrunk to seconds on the synthetic data.
TINY = small_config(
    {
        "mnist": {
            "device": "cpu",
            "epochs": 3,
            "batch_size": 32,
            "eval_batch_size": 100,
            "train_subset": 0,
            "test_subset": 0,
            "conv": {"filters": 2},
            "depth": 3,
            "optimizer": {"lr": 1e-2},
            "lipschitz_points": 50,
        }
    }
)["mnist"]
# Columns that must agree exactly between runs (the timing columns cannot).
NUMBERS = ["variant", "epoch", "train_acc", "test_acc", "train_loss", "test_loss", "status"]


def tiny(**over) -> dict:
    """TINY with one seed (3), then `over` (nested keys joined by "__")."""
    cfg = copy.deepcopy(TINY) | {"seed": 3}
    for key, value in over.items():
        *path, last = key.split("__")
        d = cfg
        for p in path:
            d = d[p]
        d[last] = value
    return cfg


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist_syn")
    make_fake_mnist(folder, n_train=600, n_test=200, compress=False)
    return folder


def model(variant, **over) -> ResidualPairs:
    m = ResidualPairs(tiny(**over), variant, torch.Generator().manual_seed(0))
    m.project()
    return m.double()


@pytest.mark.parametrize("variant", ["pair", "convex_only", "plain_mlp"])
def test_batched_forward_equals_per_network_reference(variant):
    m = model(variant, init__v_scale=3.0)
    with torch.no_grad():
        m.c.normal_()
    x = torch.randn(7, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fast, ref = m(x), reference_scores(m, x)
    assert fast.shape == (7, 10)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    assert m.m == (10 if variant == "convex_only" else 20)


def _second_differences(f, x0, d, ts):
    """f at x0 + t d for every t (one batch); the discrete second differences along t, per output."""
    shape = (-1,) + (1,) * (x0.dim() - 1)
    with torch.no_grad():
        vals = f(x0 + ts.reshape(shape) * d)  # [T, outputs]
    return vals[2:] - 2 * vals[1:-1] + vals[:-2], vals


@pytest.mark.parametrize("variant", ["pair", "convex_only"])
def test_each_convex_network_is_convex_along_random_lines(variant):
    m = model(variant, init__v_scale=5.0, init__bias_low=-2.0, init__bias_high=2.0)
    g = torch.Generator().manual_seed(2)
    ts = torch.linspace(-3, 3, 241, dtype=torch.float64)
    bends = 0.0
    for _ in range(5):
        # in feature space x in R^n, for every network output a_m^T z_L^m at once
        x0 = torch.randn(1, m.n, dtype=torch.float64, generator=g)
        d = torch.randn(1, m.n, dtype=torch.float64, generator=g)
        dd, _ = _second_differences(m.outputs, x0, d, ts)
        assert dd.min() >= -1e-9 * dd.abs().max(), "a network output bends downwards"
        bends = max(bends, float(dd.max()))
        # in image space too (max-pool of a convolution is convex in the image)
        img0 = torch.randn(1, 1, 28, 28, dtype=torch.float64, generator=g)
        dimg = torch.randn(1, 1, 28, 28, dtype=torch.float64, generator=g)
        dd_img, _ = _second_differences(lambda im: m.outputs(m.features(im)), img0, dimg, ts)
        assert dd_img.min() >= -1e-9 * dd_img.abs().max()
    assert bends > 1e-6, "the test lines never crossed a kink: the check would be vacuous"


def test_plain_mlp_is_not_convex_so_the_convexity_check_can_fail():
    m = model("plain_mlp", init__bias_low=-2.0, init__bias_high=2.0)
    g = torch.Generator().manual_seed(2)
    ts = torch.linspace(-3, 3, 241, dtype=torch.float64)
    x0 = torch.randn(1, m.n, dtype=torch.float64, generator=g)
    d = torch.randn(1, m.n, dtype=torch.float64, generator=g)
    dd, _ = _second_differences(m.outputs, x0, d, ts)
    assert dd.min() < -1e-6


def test_feature_size_default_is_392_and_too_large_pool_is_a_user_error():
    assert feature_size({"filters": 8, "size": 5, "padding": 2, "pool": 4}) == 392
    with pytest.raises(UserError, match="mnist.conv.pool"):
        feature_size({"filters": 8, "size": 28, "padding": 0, "pool": 4})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_one_clear_sentence():
    with pytest.raises(UserError, match=r"mnist.device is 'cuda' but PyTorch sees no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def _train(cfg, folder, ckpt, variant="pair"):
    return train(cfg, variant, load_mnist(folder), ckpt, log=open(os.devnull, "w"))


def test_tiny_training_beats_chance_and_keeps_constraints(synthetic, tmp_path):
    out = _train(tiny(), synthetic, tmp_path / "ck")
    m = out.metrics
    assert list(m["epoch"]) == [1, 2, 3] and (m["status"] == "ok").all()
    assert m["test_acc"].iloc[-1] > 0.5 and m["train_acc"].iloc[-1] > 0.5  # chance is 0.1
    assert m["train_loss"].iloc[-1] < m["train_loss"].iloc[0]
    assert all(out.state[f"V.{i}"].min() >= 0 for i in range(3)) and out.state["a"].min() >= 0
    assert set(out.drift["layer"]) == {1, 2, 3} and len(out.drift) == 3 * 20 * 3
    assert (out.drift["bias_drift"] > 0).any() and (out.drift["weight_drift"] > 0).all()
    lip = out.lipschitz.iloc[0]
    assert lip["points"] == 50 and 0 < lip["lipschitz_features"] and 0 < lip["lipschitz_input"]


def test_same_seed_same_metrics_and_another_seed_differs(synthetic, tmp_path):
    cfg = tiny(epochs=2)
    a = _train(cfg, synthetic, tmp_path / "a").metrics
    b = _train(cfg, synthetic, tmp_path / "b").metrics
    pd.testing.assert_frame_equal(a[NUMBERS], b[NUMBERS])
    c = _train(tiny(epochs=2, seed=4), synthetic, tmp_path / "c").metrics
    assert not a[NUMBERS].equals(c[NUMBERS])


def test_checkpoint_of_other_settings_is_not_resumed(synthetic, tmp_path):
    ck = tmp_path / "ck"
    first = _train(tiny(epochs=1), synthetic, ck).metrics
    assert (ck / CHECKPOINT).is_file()
    # the same settings resume: nothing left to train, the same single row comes back
    again = _train(tiny(epochs=1), synthetic, ck).metrics
    pd.testing.assert_frame_equal(first, again)
    # other settings (lr) must not pick up that checkpoint
    other = _train(tiny(epochs=1, optimizer__lr=1e-3), synthetic, ck).metrics
    assert other["train_loss"].iloc[0] != first["train_loss"].iloc[0]


KILL_DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    from pipeline.data import load_mnist
    from pipeline.mnist.train import train
    cfg, folder, ckpt, out, kill_at = json.loads(sys.argv[1])
    torch.set_num_threads(1)

    def on_step(epoch, step):
        if kill_at and [epoch, step] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a real SIGKILL, mid-epoch

    res = train(cfg, "pair", load_mnist(folder), ckpt, log=sys.stderr, on_step=on_step)
    res.metrics.to_parquet(out)
    """
)


def _driver(tmp_path, cfg, folder, ckpt, out, kill_at=None):
    script = tmp_path / "driver.py"
    script.write_text(KILL_DRIVER)
    args = json.dumps([cfg, str(folder), str(ckpt), str(out), kill_at])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, str(script), args], capture_output=True, text=True, env=env, timeout=300
    )


def test_sigkill_mid_training_then_resume_equals_uninterrupted(synthetic, tmp_path):
    cfg = tiny(epochs=4)
    full = _train(cfg, synthetic, tmp_path / "ck_full").metrics  # uninterrupted, one thread as below
    killed = _driver(tmp_path, cfg, synthetic, tmp_path / "ck", tmp_path / "x.parquet", kill_at=[3, 5])
    assert killed.returncode == -signal.SIGKILL
    assert "epoch 2/4" in killed.stderr and "epoch 3/4" not in killed.stderr
    assert not (tmp_path / "x.parquet").exists() and (tmp_path / "ck" / CHECKPOINT).is_file()
    resumed = _driver(tmp_path, cfg, synthetic, tmp_path / "ck", tmp_path / "resumed.parquet")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming pair from the checkpoint after epoch 2" in resumed.stderr
    assert "epoch 1/4" not in resumed.stderr
    b = pd.read_parquet(tmp_path / "resumed.parquet")
    assert list(b["epoch"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(full[NUMBERS], b[NUMBERS])


def test_zero_epochs_fails_before_any_job_naming_the_key(workflow_copy, tmp_path):
    proc = dry_run(workflow_copy, {"mnist": {"epochs": 0}}, tmp_path)
    assert proc.returncode != 0
    assert "Config key mnist.epochs = 0 is invalid" in proc.stdout + proc.stderr


def test_unknown_variant_fails_before_any_job(workflow_copy, tmp_path):
    proc = dry_run(workflow_copy, {"mnist": {"variants": ["pair", "resnet"]}}, tmp_path)
    assert proc.returncode != 0
    assert "mnist.variants.1" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_smoke_run_writes_every_mnist_output(smoke_run, smoke_config):
    work, _ = smoke_run
    cfg = smoke_config["mnist"]
    epochs = cfg["epochs"]
    res = work / "results" / "mnist"
    for variant in cfg["variants"]:
        m = pd.read_parquet(res / variant / "metrics.parquet")
        cols = [
            "variant",
            "epoch",
            "train_acc",
            "test_acc",
            "train_loss",
            "test_loss",
            "seconds",
            "images_per_s",
        ]
        assert list(m.columns[:8]) == cols
        assert (m["variant"] == variant).all() and sorted(m["seed"].unique()) == cfg["seeds"]
        for _, one in m.groupby("seed"):
            assert list(one["epoch"]) == list(range(1, epochs + 1))
        assert m["test_acc"].between(0, 1).all() and (m["images_per_s"] > 0).all()
        for seed in cfg["seeds"]:
            shard = res / variant / "shards" / f"seed{seed}"
            assert (shard / "model.pt").is_file() and (shard / "drift.parquet").is_file()
            assert not (shard / "checkpoints" / CHECKPOINT).exists()  # removed once done
            log = (work / "results" / "logs" / "mnist" / variant / f"shard_seed{seed}.log").read_text()
            assert f"epoch {epochs}/{epochs}" in log
        summary = pd.read_csv(res / variant / "summary.csv")
        assert list(summary["seed"]) == cfg["seeds"]
        if variant == "pair":
            assert summary["final_test_acc"].min() > 0.2  # chance is 0.1
    for name in ("accuracy", "gap", "drift"):
        for fmt in smoke_config["figures"]["formats"]:
            assert (res / "figures" / f"{name}.{fmt}").stat().st_size > 0
