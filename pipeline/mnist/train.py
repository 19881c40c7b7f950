"""Training loop of the MNIST residual-pair models: device-resident data, resumable, logged.

- Splits (`splits`): with `mnist.validation = N > 0`, N training images (the same for every
  seed) are held out and evaluated INSTEAD of the test set, which is then never touched;
  training uses the rest (or a seeded `train_subset` of it). The training accuracy and loss
  after each epoch are measured on a fixed seeded subset of the training images
  (`eval_train_subset`; 0 = all of them), in the compute precision (`mnist.precision`).
- The whole (sub)dataset is moved to the device once; each epoch's batches are slices of a
  `torch.randperm` drawn on the device from a seeded generator (no DataLoader).
- After every epoch: train and test (or validation) accuracy and loss, drift of every network
  and layer, one log line, and a checkpoint written atomically (temporary file + `os.replace`)
  holding the model, the optimiser, the permutation generator's state and the metrics so far.
  Progress: tqdm bars (epochs, steps) on a terminal stream only. A restarted
  run with the same settings resumes from it, and on CPU ends with exactly the same per-epoch
  numbers as an uninterrupted run (only the timing columns differ).
- A checkpoint is used only if its fingerprint (every config entry that changes the numbers,
  the variant and the data sizes) matches; otherwise training starts afresh.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from pipeline.data import MnistTensors
from pipeline.errors import UserError
from pipeline.mnist.model import (
    ResidualPairs,
    configure_backend,
    drift_rows,
    evaluate,
    fingerprint,
    init_state,
    lipschitz_rows,
    loss_fn,
    metrics_frame,
    resolve_device,
)
from pipeline.seeds import derive_seed, generator

CHECKPOINT = "last.pt"


@dataclass
class TrainOutcome:
    metrics: pd.DataFrame
    drift: pd.DataFrame
    lipschitz: pd.DataFrame
    state: dict
    device: str


def make_optimizer(opt: dict, params) -> torch.optim.Optimizer:
    if opt["name"] == "sgd":
        return torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"], nesterov=opt["nesterov"])
    if opt["name"] == "adam":
        return torch.optim.Adam(params, lr=opt["lr"], fused=True)
    raise ValueError(opt["name"])


def optimizer_settings(opt: dict, variant: str) -> dict:
    """The optimiser block for one variant: `lr_by_variant[variant]` replaces `lr` where set."""
    return {**opt, "lr": opt.get("lr_by_variant", {}).get(variant, opt["lr"])}


def learning_rate(opt: dict, step: int, total_steps: int) -> float:
    """Step size at global step `step` (0-based).

    A linear warmup over the first round(warmup * total_steps) steps (lr (step + 1) / W), then
    the schedule over the remaining steps: constant, or cosine decay to 0 at the end.
    """
    warm = round(opt["warmup"] * total_steps)
    if step < warm:
        return opt["lr"] * (step + 1) / warm
    if opt["schedule"] == "cosine":
        return opt["lr"] * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(total_steps - warm, 1)))
    return opt["lr"]


@dataclass
class Splits:
    """The images of one run. Indices refer to the MNIST training set (`train`, `eval_train`,
    `validation`) or test set (`eval` when `eval_set` is test); `eval` is what the `test_*`
    columns measure: the validation images when there are any, else the test images."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval_train: torch.Tensor
    y_eval_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    eval_set: str
    index: dict[str, torch.Tensor]


def _pick(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    """k of range(n), drawn with `g`, sorted (k = 0 or k >= n: all, in order)."""
    if k <= 0 or k >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=g)[:k].sort().values


def splits(cfg: dict, data: MnistTensors) -> Splits:
    """Training, train-evaluation and evaluation images of one run (see the module docstring).

    Seeds: the validation images are drawn once for all runs ("mnist", "validation"); the
    training subset, the train-evaluation subset and the test subset from the run's seed.
    """
    seed, n_all, n_val = cfg["seed"], data.x_train.shape[0], cfg["validation"]
    if n_val >= n_all:
        raise UserError(
            f"Config key mnist.validation = {n_val} holds out every one of the {n_all} training "
            "images; lower it so that some are left to train on."
        )
    if n_val > 0:
        perm = torch.randperm(n_all, generator=generator("mnist", "validation"))
        val, rest = perm[:n_val].sort().values, perm[n_val:].sort().values
    else:
        val, rest = torch.arange(0), torch.arange(n_all)
    train = rest[_pick(len(rest), cfg["train_subset"], generator("mnist", "train subset", seed))]
    g_eval = generator("mnist", "eval train subset", seed)
    eval_train = train[_pick(len(train), cfg["eval_train_subset"], g_eval)]
    index = {"train": train, "eval_train": eval_train, "validation": val}
    if n_val > 0:
        x_eval, y_eval, eval_set = data.x_train[val], data.y_train[val], "validation"
        index["eval"] = val
    else:
        test = _pick(data.x_test.shape[0], cfg["test_subset"], generator("mnist", "test subset", seed))
        x_eval, y_eval, eval_set = data.x_test[test], data.y_test[test], "test"
        index["eval"] = test
    return Splits(
        data.x_train[train],
        data.y_train[train],
        data.x_train[eval_train],
        data.y_train[eval_train],
        x_eval,
        y_eval,
        eval_set,
        index,
    )


class Timer:
    """Wall time of a block; CUDA events on a GPU (the work is asynchronous), perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self.t0


class Progress:
    """tqdm bars on `stream` (epochs, and steps within an epoch); silent when `stream` is None
    or not a terminal. `say` prints a log line without tearing a bar drawn on the same stream."""

    def __init__(self, stream, log, epochs: int, done: int, steps: int, label: str):
        off = True if stream is None else None  # None: tqdm switches itself off unless a tty
        common = {"file": stream, "disable": off, "dynamic_ncols": True, "mininterval": 0.2}
        self.epochs = tqdm(total=epochs, initial=done, desc=label, unit="epoch", position=0, **common)
        self.steps = tqdm(total=steps, desc="  steps", unit="step", position=1, leave=False, **common)
        self.log, self.shared = log, stream is log and not self.epochs.disable

    def say(self, line: str) -> None:
        if self.shared:
            tqdm.write(line, file=self.log)
        else:
            print(line, file=self.log, flush=True)

    def close(self) -> None:
        self.steps.close()
        self.epochs.close()


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, fp: str, log) -> dict | None:
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - an unreadable checkpoint means a fresh start
        print(f"checkpoint {path} is unreadable ({err}); starting afresh", file=log)
        return None
    if ckpt.get("fingerprint") != fp:
        print(f"checkpoint {path} belongs to other settings; starting afresh", file=log)
        return None
    return ckpt


def train(
    cfg: dict,
    variant: str,
    data: MnistTensors,
    checkpoint_dir: str | Path,
    log=None,
    progress_stream=None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainOutcome:
    """Train one variant for `cfg["epochs"]` epochs, resuming from `checkpoint_dir` if possible.

    `log` receives one line per epoch (default: sys.stderr); `progress_stream`, if given and a
    terminal, tqdm bars; `on_step(epoch, step)` is called after every optimiser step (tests).
    """
    log = log or sys.stderr
    device = resolve_device(cfg["device"])
    configure_backend(device, cfg)
    seed = cfg["seed"]
    sp = splits(cfg, data)
    x_tr, y_tr, x_et, y_et, x_ev, y_ev = (
        t.to(device) for t in (sp.x_train, sp.y_train, sp.x_eval_train, sp.y_eval_train, sp.x_eval, sp.y_eval)
    )
    n_train, bs, kind = x_tr.shape[0], cfg["batch_size"], cfg["loss"]
    opt_cfg = optimizer_settings(cfg["optimizer"], variant)

    model = ResidualPairs(cfg, variant, generator("mnist", "init", seed))  # on CPU: the same on any device
    model.project()
    model.to(device)
    if cfg["compile"]:
        model.compile_training(log)
    init = init_state(model)
    optimizer = make_optimizer(opt_cfg, model.parameters())
    perm_gen = torch.Generator(device=device).manual_seed(derive_seed("mnist", "batches", seed))

    shapes = [tuple(x_tr.shape), tuple(x_et.shape), tuple(x_ev.shape), (sp.eval_set,), (device.type,)]
    fp = fingerprint(cfg, variant, shapes)
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    rows, drift, start_epoch = [], [], 0
    ckpt = load_checkpoint(ckpt_path, fp, log)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        perm_gen.set_state(ckpt["perm_rng"])
        rows, drift, start_epoch = ckpt["metrics"], ckpt["drift"], ckpt["epoch"]
        print(f"resuming {variant} from the checkpoint after epoch {start_epoch}", file=log)
    print(
        f"{variant}: {model.m} networks, n = {model.n}, L = {model.depth}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, {n_train} train images "
        f"(accuracy on {x_et.shape[0]}), {x_ev.shape[0]} {sp.eval_set} images, device {device}, "
        f"{cfg['precision']}",
        file=log,
        flush=True,
    )

    steps_per_epoch = math.ceil(n_train / bs)
    total_steps = cfg["epochs"] * steps_per_epoch
    status = rows[-1]["status"] if rows else "ok"
    bars = Progress(progress_stream, log, cfg["epochs"], start_epoch, steps_per_epoch, variant)
    try:
        for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
            if status != "ok":
                break
            bars.steps.reset(total=steps_per_epoch)
            bars.steps.set_description(f"  epoch {epoch}")
            model.train()
            with Timer(device) as t_train:
                perm = torch.randperm(n_train, generator=perm_gen, device=device)
                for step in range(steps_per_epoch):
                    idx = perm[step * bs : (step + 1) * bs]
                    lr = learning_rate(opt_cfg, (epoch - 1) * steps_per_epoch + step, total_steps)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    loss = loss_fn(model(x_tr[idx]), y_tr[idx], kind)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    model.project()
                    bars.steps.update()
                    if on_step:
                        on_step(epoch, step)
            model.eval()
            with Timer(device) as t_eval:
                train_acc, train_loss = evaluate(model, x_et, y_et, kind, cfg["eval_batch_size"])
                test_acc, test_loss = evaluate(model, x_ev, y_ev, kind, cfg["eval_batch_size"])
            if not all(math.isfinite(v) for v in (train_loss, test_loss)):
                status = "diverged"
            rows.append(
                {
                    "variant": variant,
                    "epoch": epoch,
                    "train_acc": train_acc,
                    "test_acc": test_acc,
                    "train_loss": train_loss,
                    "test_loss": test_loss,
                    "seconds": t_train.seconds,
                    "images_per_s": n_train / t_train.seconds,
                    "eval_seconds": t_eval.seconds,
                    "eval_set": sp.eval_set,
                    "eval_train_images": int(x_et.shape[0]),
                    "eval_images": int(x_ev.shape[0]),
                    "train_images": n_train,
                    "precision": cfg["precision"],
                    "lr_end": lr,
                    "status": status,
                }
            )
            drift.extend(drift_rows(model, init, epoch))
            bars.epochs.update()
            ev = sp.eval_set
            bars.say(
                f"epoch {epoch}/{cfg['epochs']}  train_acc {train_acc:.4f}  {ev}_acc {test_acc:.4f}  "
                f"train_loss {train_loss:.5f}  {ev}_loss {test_loss:.5f}  seconds "
                f"{t_train.seconds:.1f}  images/s {n_train / t_train.seconds:.0f}  "
                f"(eval {t_eval.seconds:.1f} s) {status}"
            )
            _atomic_save(
                {
                    "fingerprint": fp,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "perm_rng": perm_gen.get_state(),
                    "metrics": rows,
                    "drift": drift,
                },
                ckpt_path,
            )
    finally:
        bars.close()

    model.eval()
    n_lip = min(cfg["lipschitz_points"], x_ev.shape[0])
    lip_df = pd.DataFrame(lipschitz_rows(model, x_ev[:n_lip], cfg["eval_batch_size"]))
    lip_df.insert(0, "variant", variant)
    lip_df["eval_set"] = sp.eval_set
    lip_df["wrt"] = "normalised image (input); pooled features x (features)"
    metrics = metrics_frame(rows)
    drift_df = pd.DataFrame(drift)
    drift_df.insert(0, "variant", variant)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return TrainOutcome(metrics, drift_df, lip_df, state, str(device))
