"""Training loop of the MNIST residual-pair models: device-resident data, resumable, logged.

- The whole (sub)dataset is moved to the device once; each epoch's batches are slices of a
  `torch.randperm` drawn on the device from a seeded generator (no DataLoader).
- After every epoch: train and test accuracy and loss, drift of every network and layer, one
  log line, and a checkpoint written atomically (temporary file + `os.replace`) holding the
  model, the optimiser, the permutation generator's state and the metrics so far. A restarted
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

from pipeline.data import MnistTensors
from pipeline.mnist.model import (
    ResidualPairs,
    configure_backend,
    drift_rows,
    evaluate,
    fingerprint,
    init_state,
    lipschitz_estimate,
    loss_fn,
    metrics_frame,
    resolve_device,
    subset,
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


def learning_rate(opt: dict, step: int, total_steps: int) -> float:
    """Step size at global step `step` (0-based): constant, or cosine decay to 0 over the run."""
    if opt["schedule"] == "cosine":
        return opt["lr"] * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return opt["lr"]


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


class ProgressBar:
    """A one-line bar on a terminal stream, redrawn at most every 0.2 s; silent otherwise."""

    def __init__(self, stream, total: int, label: str, width: int = 30):
        self.stream, self.total, self.label, self.width = stream, total, label, width
        self.done, self.t0, self.last = 0, time.perf_counter(), 0.0

    def update(self, k: int = 1) -> None:
        self.done += k
        now = time.perf_counter()
        if now - self.last < 0.2 and self.done < self.total:
            return
        self.last = now
        frac = self.done / self.total
        fill = int(self.width * frac)
        rate = self.done / max(now - self.t0, 1e-9)
        self.stream.write(
            f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {100 * frac:5.1f}% {rate:6.1f} it/s"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


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

    `log` receives one line per epoch (default: sys.stderr); `progress_stream`, if given, a
    progress bar; `on_step(epoch, step)` is called after every optimiser step (tests use it).
    """
    log = log or sys.stderr
    device = resolve_device(cfg["device"])
    configure_backend(device, cfg)
    seed = cfg["seed"]
    x_tr, y_tr = subset(
        data.x_train, data.y_train, cfg["train_subset"], generator("mnist", "train subset", seed)
    )
    x_te, y_te = subset(data.x_test, data.y_test, cfg["test_subset"], generator("mnist", "test subset", seed))
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    n_train, bs, kind, opt_cfg = x_tr.shape[0], cfg["batch_size"], cfg["loss"], cfg["optimizer"]

    model = ResidualPairs(cfg, variant, generator("mnist", "init", seed))  # on CPU: the same on any device
    model.project()
    model.to(device)
    init = init_state(model)
    optimizer = make_optimizer(opt_cfg, model.parameters())
    perm_gen = torch.Generator(device=device).manual_seed(derive_seed("mnist", "batches", seed))

    fp = fingerprint(cfg, variant, [tuple(x_tr.shape), tuple(x_te.shape), (device.type,)])
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
        f"{sum(p.numel() for p in model.parameters()):,} parameters, {n_train} train / "
        f"{x_te.shape[0]} test images, device {device}",
        file=log,
        flush=True,
    )

    steps_per_epoch = math.ceil(n_train / bs)
    total_steps = cfg["epochs"] * steps_per_epoch
    status = rows[-1]["status"] if rows else "ok"
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        if status != "ok":
            break
        bar = ProgressBar(progress_stream, steps_per_epoch, f"{variant} {epoch}") if progress_stream else None
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
                if bar:
                    bar.update()
                if on_step:
                    on_step(epoch, step)
        if bar:
            bar.close()
        model.eval()
        with Timer(device) as t_eval:
            train_acc, train_loss = evaluate(model, x_tr, y_tr, kind, cfg["eval_batch_size"])
            test_acc, test_loss = evaluate(model, x_te, y_te, kind, cfg["eval_batch_size"])
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
                "lr_end": lr,
                "status": status,
            }
        )
        drift.extend(drift_rows(model, init, epoch))
        print(
            f"epoch {epoch}/{cfg['epochs']}  train_acc {train_acc:.4f}  test_acc {test_acc:.4f}  "
            f"train_loss {train_loss:.5f}  test_loss {test_loss:.5f}  seconds {t_train.seconds:.1f}  "
            f"images/s {n_train / t_train.seconds:.0f}  (eval {t_eval.seconds:.1f} s) {status}",
            file=log,
            flush=True,
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

    model.eval()
    n_lip = min(cfg["lipschitz_points"], x_te.shape[0])
    lip = lipschitz_estimate(model, x_te[:n_lip], cfg["eval_batch_size"])
    metrics = metrics_frame(rows)
    drift_df = pd.DataFrame(drift)
    drift_df.insert(0, "variant", variant)
    lip_df = pd.DataFrame([{"variant": variant, **lip, "wrt": "normalised image; pooled features x"}])
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return TrainOutcome(metrics, drift_df, lip_df, state, str(device))


def finish(checkpoint_dir: str | Path) -> None:
    """Remove the checkpoint once the outputs are written (a later run with new settings starts afresh)."""
    (Path(checkpoint_dir) / CHECKPOINT).unlink(missing_ok=True)
