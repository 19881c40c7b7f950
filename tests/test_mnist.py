"""MNIST residual-pair model: batched == per-network, convexity, precision, splits, Lipschitz
bounds, training, resume, progress bars, parts in the workflow, the sweep and the GPU check."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pipeline.config import validate
from pipeline.data import MnistTensors, load_mnist
from pipeline.errors import UserError
from pipeline.mnist.model import (
    N_CLASSES,
    ResidualPairs,
    conv_norm_power,
    conv_norm_upper,
    feature_size,
    lipschitz_upper,
    loss_fn,
    reference_scores,
    resolve_device,
)
from pipeline.mnist.train import CHECKPOINT, Timer, learning_rate, make_optimizer, splits, train
from tests.helpers import REPO, dry_run, make_fake_mnist, small_config

# The mnist block of the smoke config, shrunk to seconds on the synthetic data.
TINY = small_config(
    {
        "mnist": {
            "device": "cpu",
            # exact comparisons need float32 (the default is bfloat16); the precision tests
            # set bfloat16 themselves
            "precision": "float32",
            # eager by default (each compile costs seconds); the compile tests switch it on
            "compile": False,
            "epochs": 3,
            "batch_size": 32,
            "eval_batch_size": 100,
            "train_subset": 0,
            "test_subset": 0,
            "eval_train_subset": 0,
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


# ---------------------------------------------------------------------- torch.compile ---------
@pytest.mark.parametrize(("precision", "tol"), [("float32", 1e-5), ("bfloat16", 1e-2)])
def test_a_compiled_training_step_computes_the_eager_step_up_to_rounding(precision, tol):
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)
    out = {}
    for compiled in (False, True):
        m = ResidualPairs(tiny(precision=precision), "pair", torch.Generator().manual_seed(0))
        m.project()
        if compiled:
            m.compile_training()
        scores = m(x)
        loss_fn(scores, y, "mse").backward()
        out[compiled] = (scores.detach(), [q.grad.detach().clone() for q in m.parameters()])
        with torch.no_grad():  # evaluation stays eager: the same numbers exactly
            assert torch.equal(m(x), m.scores_from_features(m.features(x)))
    assert m._compiled is not None  # it really ran compiled
    assert float((out[True][0] - out[False][0]).norm() / out[False][0].norm()) < tol
    assert _rel(out[False][1], out[True][1]) < tol


def test_a_failing_compiler_is_one_line_in_the_log_and_training_goes_on_eagerly(monkeypatch):
    def broken(fn, **kw):
        def run(*a):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    log = io.StringIO()
    m = ResidualPairs(tiny(), "pair", torch.Generator().manual_seed(0))
    m.compile_training(log)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(m(x), m.scores_from_features(m.features(x)))
    assert log.getvalue().count("\n") == 1 and "torch.compile failed (RuntimeError" in log.getvalue()
    assert m._compiled is None  # and it is not tried again


def test_compiled_training_is_deterministic(synthetic, tmp_path):
    cfg = tiny(epochs=1, compile=True)
    a = _train(cfg, synthetic, tmp_path / "a").metrics
    b = _train(cfg, synthetic, tmp_path / "b").metrics
    pd.testing.assert_frame_equal(a[NUMBERS], b[NUMBERS])


# ---------------------------------------------------------------------- precision -------------
def _one_step(variant, precision, cfg, x, y):
    """Scores before, gradients of, and parameter change by one Adam step from the same init."""
    m = ResidualPairs({**cfg, "precision": precision}, variant, torch.Generator().manual_seed(0))
    m.project()
    before = [p.detach().clone() for p in m.parameters()]
    opt = make_optimizer(cfg["optimizer"], m.parameters())
    scores = m(x)
    loss_fn(scores, y, "mse").backward()
    grads = [p.grad.detach().clone() for p in m.parameters()]
    opt.step()
    m.project()
    return scores.detach(), grads, [p.detach() - b for p, b in zip(m.parameters(), before, strict=True)]


def _rel(a: list, b: list) -> float:
    num = sum(float((u - v).square().sum()) for u, v in zip(a, b, strict=True))
    return math.sqrt(num / sum(float(u.square().sum()) for u in a))


# Measured at the default size (n = 392, L = 10), batch 64 (pair): scores 8e-4, gradients
# 3.5e-4, the first Adam step's update 5.4e-3 relative (Adam's first step is about lr * sign(g),
# so gradients near zero that change sign count fully); the tiny model here: 5e-4, 4e-4, 5e-3.
# plain_mlp has no float32 stream to carry the signal: 0.6 %, 0.7 %, 13 %.
STEP_TOLERANCE = {
    "pair": (3e-3, 2e-3, 2e-2),
    "convex_only": (3e-3, 2e-3, 2e-2),
    "plain_mlp": (3e-2, 3e-2, 0.5),
}


@pytest.mark.parametrize("variant", ["pair", "convex_only", "plain_mlp"])
def test_one_bfloat16_step_stays_close_to_the_float32_step(variant):
    cfg = tiny()
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    s32, g32, d32 = _one_step(variant, "float32", cfg, x, y)
    s16, g16, d16 = _one_step(variant, "bfloat16", cfg, x, y)
    assert all(t.dtype == torch.float32 for t in [s16, *g16, *d16])  # float32 master weights, loss
    tol_scores, tol_grads, tol_update = STEP_TOLERANCE[variant]
    assert 0 < float((s16 - s32).norm() / s32.norm()) < tol_scores  # 0: bfloat16 was really used
    assert 0 < _rel(g32, g16) < tol_grads
    assert _rel(d32, d16) < tol_update


def test_bfloat16_keeps_the_residual_stream_and_the_projection_in_float32():
    m = model("pair")
    m = ResidualPairs(tiny(precision="bfloat16"), "pair", torch.Generator().manual_seed(0))
    x = torch.randn(5, m.n)
    assert m.networks(x).dtype == torch.float32 and m.outputs(x).dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in m.parameters())
    with m.precision(torch.float32):  # the Lipschitz measurements switch to float32
        exact = m.outputs(x)
    assert m.compute_dtype == torch.bfloat16
    torch.testing.assert_close(m.outputs(x), exact, rtol=2e-2, atol=1e-4)


def test_frozen_low_precision_weights_change_no_number_and_never_block_gradients():
    m = ResidualPairs(tiny(precision="bfloat16"), "pair", torch.Generator().manual_seed(0))
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = m(x)
        with m.frozen():
            assert m._frozen is not None and torch.equal(m(x), plain)
    assert m._frozen is None
    with m.frozen():  # with gradients on, the frozen copies are not used: V still gets its gradient
        m(x).sum().backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in m.V)


# ---------------------------------------------------------------------- splits ----------------
def _fake_data(n_train=600, n_test=200) -> MnistTensors:
    g = torch.Generator().manual_seed(0)
    return MnistTensors(
        torch.arange(n_train, dtype=torch.float32)[:, None, None, None].expand(-1, 1, 28, 28).clone(),
        torch.randint(0, 10, (n_train,), generator=g),
        -1 - torch.arange(n_test, dtype=torch.float32)[:, None, None, None].expand(-1, 1, 28, 28).clone(),
        torch.randint(0, 10, (n_test,), generator=g),
    )


def test_validation_split_is_disjoint_from_training_and_replaces_the_test_set():
    data = _fake_data()
    sp = splits(tiny(validation=100, eval_train_subset=50), data)
    train_ids, val_ids = set(sp.index["train"].tolist()), set(sp.index["validation"].tolist())
    assert len(val_ids) == 100 and len(train_ids) == 500 and not train_ids & val_ids
    assert sp.eval_set == "validation" and (sp.x_eval >= 0).all()  # training images, no test image
    assert set(sp.x_eval[:, 0, 0, 0].long().tolist()) == val_ids
    assert set(sp.x_train[:, 0, 0, 0].long().tolist()) == train_ids
    eval_ids = set(sp.index["eval_train"].tolist())
    assert len(eval_ids) == 50 and eval_ids <= train_ids
    assert set(sp.x_eval_train[:, 0, 0, 0].long().tolist()) == eval_ids
    # the held-out images are the same for every seed; the training subset is the seed's
    other = splits(tiny(validation=100, seed=4, train_subset=300), data)
    assert torch.equal(other.index["validation"], sp.index["validation"])
    assert len(other.index["train"]) == 300 and not set(other.index["train"].tolist()) & val_ids
    # without a validation split: the test set (or its seeded subset) is evaluated
    plain = splits(tiny(test_subset=80), data)
    assert plain.eval_set == "test" and len(plain.x_eval) == 80 and (plain.x_eval < 0).all()
    assert len(plain.index["train"]) == 600 and len(plain.index["eval_train"]) == 600
    with pytest.raises(UserError, match="mnist.validation = 600 holds out every one"):
        splits(tiny(validation=600), data)


def test_training_with_validation_never_touches_the_test_set(synthetic, tmp_path):
    data = load_mnist(synthetic)
    poisoned = MnistTensors(
        data.x_train, data.y_train, torch.full_like(data.x_test, float("nan")), data.y_test
    )
    cfg = tiny(epochs=2, validation=150, eval_train_subset=200)
    out = train(cfg, "pair", poisoned, tmp_path / "ck", log=open(os.devnull, "w"))
    m = out.metrics
    assert (m["eval_set"] == "validation").all() and (m["status"] == "ok").all()
    assert m["test_loss"].notna().all() and (m["eval_images"] == 150).all()
    assert (m["train_images"] == 450).all() and (m["eval_train_images"] == 200).all()
    assert (out.lipschitz["eval_set"] == "validation").all() and out.lipschitz[
        "lipschitz_input"
    ].notna().all()


def test_warmup_rises_linearly_then_follows_the_schedule():
    opt = {"lr": 1.0, "warmup": 0.1, "schedule": "cosine"}
    lrs = [learning_rate(opt, step, 100) for step in range(100)]
    assert lrs[:10] == pytest.approx([(k + 1) / 10 for k in range(10)])
    assert lrs[10] == 1.0 and lrs[-1] < 1e-3 and all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    flat = {"lr": 0.5, "warmup": 0.0, "schedule": "constant"}
    assert {learning_rate(flat, s, 100) for s in range(100)} == {0.5}
    cosine = {"lr": 1.0, "warmup": 0.0, "schedule": "cosine"}  # unchanged without a warmup
    assert learning_rate(cosine, 25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


# ---------------------------------------------------------------------- Lipschitz bounds --------
def _grad_norms(m, x, wrt_features: bool) -> torch.Tensor:
    """||grad s_k||_2 at each point for each class, [points, 10] (double precision)."""
    x = x.clone().requires_grad_(True)
    s = m.scores_from_features(x) if wrt_features else m(x)
    rows = [
        torch.autograd.grad(s[:, k].sum(), x, retain_graph=True)[0].flatten(1).norm(dim=1) for k in range(10)
    ]
    return torch.stack(rows, 1)


@pytest.mark.parametrize("variant", ["pair", "convex_only", "plain_mlp"])
def test_lipschitz_upper_bound_is_above_brute_force_gradient_norms(variant):
    m = model(variant, init__v_scale=3.0, init__bias_low=-2.0, init__bias_high=2.0)
    up = lipschitz_upper(m)
    g = torch.Generator().manual_seed(7)
    for scale in (0.3, 1.0, 3.0):  # random points of several sizes, in feature and image space
        x = scale * torch.randn(64, m.n, dtype=torch.float64, generator=g)
        assert (_grad_norms(m, x, True).max(0).values <= up["features"] * (1 + 1e-9)).all()
        img = scale * torch.randn(16, 1, 28, 28, dtype=torch.float64, generator=g)
        assert (_grad_norms(m, img, False).max(0).values <= up["input"] * (1 + 1e-9)).all()


@pytest.mark.parametrize("variant", ["pair", "convex_only"])
def test_the_convex_bound_argument_on_a_tiny_model(variant):
    """n = 16: the Jacobian of every network's z_L w.r.t. x is entrywise in [0, U] (U = (I + V_L)
    ... (I + V_1), column form), grad s_k lies in [-Q, P], and with every unit active (very
    negative biases) the gradient of each network output is exactly U^T a."""
    cfg = tiny(conv__filters=1, conv__pool=7, depth=3, init__v_scale=2.0)
    m = ResidualPairs(cfg, variant, torch.Generator().manual_seed(1)).double()
    assert m.n == 16
    eye = torch.eye(m.n, dtype=torch.float64)
    U = [eye.clone() for _ in range(m.m)]
    for v in m.V:  # stored V[i][m] = the paper's V_i^T, so U_m^T = prod_i (I + V[i][m]) in order
        U = [u @ (eye + v[k].detach()) for k, u in enumerate(U)]
    bound = torch.stack([u @ m.a[k].detach() for k, u in enumerate(U)])  # U^T a per network
    torch.testing.assert_close(lipschitz_upper(m)["features"][:N_CLASSES], _pair_bound(bound, m.m))
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        x = 2 * torch.randn(m.n, dtype=torch.float64, generator=g)
        jac = torch.autograd.functional.jacobian(lambda v: m.networks(v[None])[:, 0], x)  # [M, n, n]
        for k in range(m.m):
            assert (jac[k] >= -1e-12).all() and (jac[k].T <= U[k] + 1e-12).all()
        grads = torch.autograd.functional.jacobian(lambda v: m.scores_from_features(v[None])[0], x)
        P = bound[:N_CLASSES]
        Q = bound[N_CLASSES:] if m.m == 2 * N_CLASSES else torch.zeros_like(P)
        assert (grads <= P + 1e-12).all() and (grads >= -Q - 1e-12).all()
    with torch.no_grad():
        for b in m.b:
            b.fill_(-1e3)
    x = torch.randn(1, m.n, dtype=torch.float64, generator=g).requires_grad_(True)
    outs = m.outputs(x)[0]
    for k in range(m.m):
        (grad,) = torch.autograd.grad(outs[k], x, retain_graph=True)
        torch.testing.assert_close(grad[0], bound[k])


def _pair_bound(bound: torch.Tensor, m: int) -> torch.Tensor:
    if m == 2 * N_CLASSES:
        return torch.maximum(bound[:N_CLASSES], bound[N_CLASSES:]).norm(dim=1)
    return bound.norm(dim=1)


def test_conv_norm_upper_bound_sits_between_power_iteration_and_youngs_bound():
    m = model("pair", conv__filters=6)
    w = m.conv_weight.detach()
    upper, power = conv_norm_upper(w), conv_norm_power(m, iters=200)
    young = float(w.abs().sum((1, 2, 3)).square().sum().sqrt())
    assert power <= upper * (1 + 1e-9) and upper <= young * (1 + 1e-9)
    assert upper <= 1.1 * power  # the transfer function's maximum is nearly attained on 28 x 28
    with torch.no_grad():
        m.conv_weight.abs_()  # non-negative filters: the maximum is at frequency 0, sum |w|
    young = float(m.conv_weight.detach().sum((1, 2, 3)).square().sum().sqrt())
    assert conv_norm_upper(m.conv_weight) == pytest.approx(young, rel=1e-2)


def test_trained_models_upper_bounds_are_above_the_measured_lower_bounds(synthetic, tmp_path):
    for variant in ("pair", "convex_only", "plain_mlp"):
        lip = _train(tiny(epochs=1), synthetic, tmp_path / variant, variant).lipschitz
        assert list(lip["class"]) == list(range(10)) and (lip["points"] == 50).all()
        for wrt in ("input", "features"):
            assert (lip[f"lipschitz_{wrt}"] > 0).all()
            assert (lip[f"lipschitz_{wrt}_upper"] >= lip[f"lipschitz_{wrt}"]).all()
            assert (lip[f"lipschitz_{wrt}_ratio"] >= 1).all()
        if variant != "plain_mlp":  # the structural bound is tight-ish on the features
            assert (lip["lipschitz_features_ratio"] < 3).all(), lip["lipschitz_features_ratio"]


# ---------------------------------------------------------------------- progress ----------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_quiet_unless_the_stream_is_a_terminal(synthetic, tmp_path):
    quiet = io.StringIO()
    train(tiny(epochs=1), "pair", load_mnist(synthetic), tmp_path / "a", open(os.devnull, "w"), quiet)
    assert quiet.getvalue() == ""
    term = _Terminal()
    train(tiny(epochs=2), "pair", load_mnist(synthetic), tmp_path / "b", open(os.devnull, "w"), term)
    assert "pair" in term.getvalue() and "2/2" in term.getvalue() and "epoch" in term.getvalue()


# ---------------------------------------------------------------------- sweep -------------------
def run_sweep(grid: Path, mnist_dir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "bench" / "mnist_sweep.py"), "--grid", str(grid)]
    return subprocess.run(
        [*command, "--mnist-dir", str(mnist_dir), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=300,
    )


def test_sweep_writes_one_row_per_setting_and_epoch_on_the_validation_split(synthetic, tmp_path):
    grid = tmp_path / "grid.yaml"
    base = {"epochs": 2, "depth": 2, "conv": {"filters": 2}, "validation": 100, "batch_size": 64}
    settings = {"base": {}, "fast": {"optimizer": {"lr": 3e-3, "warmup": 0.2, "schedule": "cosine"}}}
    grid.write_text(yaml.safe_dump({"base": base, "variant": "pair", "seeds": [0], "settings": settings}))
    proc = run_sweep(grid, synthetic, "--out", str(tmp_path / "out"), "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert sorted(zip(rows["setting"], rows["epoch"], strict=True)) == [
        ("base", 1),
        ("base", 2),
        ("fast", 1),
        ("fast", 2),
    ]
    assert (rows["eval_set"] == "validation").all() and (rows["eval_images"] == 100).all()
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["rows"][0]["setting"] == "base"
    assert "fast" in proc.stdout and "test_acc" not in proc.stdout  # printed as validation accuracy
    # a grid that would evaluate on the test set is refused with one sentence
    grid.write_text(yaml.safe_dump({"base": {"validation": 0}, "settings": {"a": {}}}))
    bad = run_sweep(grid, synthetic)
    assert bad.returncode == 1 and "validation" in bad.stderr and "Traceback" not in bad.stderr


# ---------------------------------------------------------------------- GPU ---------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_check_without_cuda_is_one_clear_sentence(tmp_path):
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable),
        timeout=300,
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing installed, nothing written


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("variant", ["pair", "plain_mlp"])
def test_gpu_bfloat16_step_stays_close_to_the_float32_step(variant):
    cfg = tiny(device="cuda")
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    out = {}
    for precision in ("float32", "bfloat16"):
        m = ResidualPairs({**cfg, "precision": precision}, variant, torch.Generator().manual_seed(0)).cuda()
        m.project()
        scores = m(x.cuda())
        loss_fn(scores, y.cuda(), "mse").backward()
        out[precision] = (scores.detach().cpu(), [p.grad.detach().cpu() for p in m.parameters()])
    (s32, g32), (s16, g16) = out["float32"], out["bfloat16"]
    tol_scores, tol_grads, _ = STEP_TOLERANCE[variant]
    assert float((s16 - s32).norm() / s32.norm()) < tol_scores and _rel(g32, g16) < tol_grads


@pytest.mark.gpu
@gpu
def test_gpu_training_keeps_model_and_data_on_the_device(synthetic, tmp_path):
    out = train(
        tiny(epochs=1, device="cuda", precision="bfloat16"),
        "pair",
        load_mnist(synthetic),
        tmp_path,
        open(os.devnull, "w"),
    )
    assert out.device.startswith("cuda") and (out.metrics["status"] == "ok").all()
    assert all(t.device.type == "cpu" for t in out.state.values())  # returned on the CPU
    m = ResidualPairs(tiny(device="cuda"), "pair", torch.Generator().manual_seed(0)).to(
        resolve_device("cuda")
    )
    assert all(p.device.type == "cuda" for p in m.parameters())
    assert m(torch.randn(3, 1, 28, 28, device="cuda")).device.type == "cuda"


@pytest.mark.gpu
@gpu
def test_gpu_timer_uses_cuda_events_and_sees_asynchronous_work():
    a = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    with Timer(torch.device("cuda")) as t:
        for _ in range(20):
            a = a @ a / 64
    assert t.cuda and t.seconds > 0
    flops = 20 * 2 * 4096**3
    assert flops / t.seconds < 5e15  # not an impossible rate: the asynchronous work was timed


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
    parts = {"paper": {"variants": ["pair", "resnet"], "seeds": [0]}}
    proc = dry_run(workflow_copy, {"mnist": {"parts": parts}}, tmp_path)
    assert proc.returncode != 0
    assert "mnist.parts.paper.variants.1" in proc.stdout + proc.stderr


def test_parts_are_the_shards_of_the_dry_run(workflow_copy, tmp_path):
    """Every part x variant x seed is one shard job; a part set to null runs nothing."""
    parts = {"paper": None, "extra": {"variants": ["convex_only"], "seeds": [4], "epochs": 1}}
    claims = {"mnist_part": "comparison"}
    proc = dry_run(workflow_copy, {"mnist": {"parts": parts}, "report": {"claims": claims}}, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    shards = sorted(set(re.findall(r"results/mnist/(\w+)/shards/([\w-]+)/metrics.parquet", out)))
    expected = [("convex_only", "extra-seed4")]
    comparison = validate({})["mnist"]["parts"]["comparison"]
    expected += [(v, f"comparison-seed{s}") for v in comparison["variants"] for s in comparison["seeds"]]
    assert shards == sorted(expected)


@pytest.mark.workflow
def test_smoke_run_writes_every_mnist_output(smoke_run, smoke_config):
    work, _ = smoke_run
    parts = {k: v for k, v in smoke_config["mnist"]["parts"].items() if v is not None}
    epochs_of = {name: part.get("epochs", smoke_config["mnist"]["epochs"]) for name, part in parts.items()}
    res = work / "results" / "mnist"
    variants = sorted({v for part in parts.values() for v in part["variants"]})
    for variant in variants:
        runs = sorted(
            (name, seed)
            for name, part in parts.items()
            if variant in part["variants"]
            for seed in part["seeds"]
        )
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
        assert (m["variant"] == variant).all() and (m["eval_set"] == "test").all()
        assert sorted(m[["part", "seed"]].drop_duplicates().itertuples(index=False, name=None)) == runs
        for (part, _), one in m.groupby(["part", "seed"]):
            assert list(one["epoch"]) == list(range(1, epochs_of[part] + 1))
        assert m["test_acc"].between(0, 1).all() and (m["images_per_s"] > 0).all()
        for table in ("drift", "lipschitz"):
            t = pd.read_parquet(res / variant / f"{table}.parquet")
            assert sorted(t[["part", "seed"]].drop_duplicates().itertuples(index=False, name=None)) == runs
        lip = pd.read_parquet(res / variant / "lipschitz.parquet")
        assert (lip["lipschitz_features_upper"] >= lip["lipschitz_features"]).all()
        assert (lip["lipschitz_input_upper"] >= lip["lipschitz_input"]).all()
        for part, seed in runs:
            shard = res / variant / "shards" / f"{part}-seed{seed}"
            assert (shard / "model.pt").is_file() and (shard / "drift.parquet").is_file()
            assert not (shard / "checkpoints" / CHECKPOINT).exists()  # removed once done
            log = (work / "results" / "logs" / "mnist" / variant / f"shard_{part}-seed{seed}.log").read_text()
            assert f"epoch {epochs_of[part]}/{epochs_of[part]}" in log
        summary = pd.read_csv(res / variant / "summary.csv")
        assert sorted(zip(summary["part"], summary["seed"], strict=True)) == runs
        assert (summary["lipschitz_input_ratio"] >= 1).all()
        if variant == "pair":
            assert summary["final_test_acc"].min() > 0.2  # chance is 0.1
    for name in ("accuracy", "gap", "drift"):
        for fmt in smoke_config["figures"]["formats"]:
            assert (res / "figures" / f"{name}.{fmt}").stat().st_size > 0
