"""Helpers shared by the tests: small configs from config.yaml, tiny MNIST files, snakemake runs."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "config" / "smoke.yaml"
# The real MNIST files, where $MNIST_DIR names a folder holding them (`make test MNIST_DIR=...`);
# the tests that need them are skipped without it.
REAL_MNIST = Path(os.environ["MNIST_DIR"]) if os.environ.get("MNIST_DIR") else None


def small_config(*overrides) -> dict:
    """The validated config of a smoke run (config.yaml + config/smoke.yaml), with `overrides`
    (dicts or files) stacked on top: what the tests and benches build their inputs from."""
    return load_config(SMOKE, *overrides)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> bytes:
    """Write `array` (uint8) as an idx file; return the uncompressed bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return data


def make_fake_mnist(folder: Path, n_train=60, n_test=20, compress=True, seed=0) -> dict[str, str]:
    """Four small idx files in MNIST's format and names; returns their uncompressed MD5s.

    Images are a learnable synthetic task: class k lights up a 4x4 block at a position
    that depends on k, plus noise.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            r, c = 2 + 5 * (k // 5), 2 + 5 * (k % 5)
            images[i, r : r + 4, c : c + 4] = 255
        suffix = ".gz" if compress else ""
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            md5[name] = hashlib.md5(write_idx(folder / f"{name}{suffix}", arr, compress)).hexdigest()
    return md5


def fake_mnist_config(folder: Path, path: Path, **more) -> Path:
    """A config file that takes MNIST from `folder` (synthetic files made there) and nowhere else."""
    md5 = make_fake_mnist(folder, n_train=600, n_test=200)
    path.write_text(yaml.safe_dump({"mnist_dir": str(folder), "data": {"md5": md5, "mirrors": []}, **more}))
    return path


def copy_repo(dest: Path) -> Path:
    """A copy of the workflow (no results, no venv) to run snakemake in."""
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "results", ".snakemake", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900):
    """Run the venv's snakemake in `workdir`; returns the CompletedProcess (text)."""
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def dry_run(work: Path, overrides: dict, tmp_path: Path, *args: str):
    """`snakemake -n` with `overrides` stacked on `args` (or config.yaml); the CompletedProcess."""
    cfg = tmp_path / "overrides.yaml"
    cfg.write_text(yaml.safe_dump(overrides))
    if args:
        return snakemake(work, "-n", *args, str(cfg), check=False, timeout=300)
    return snakemake(work, "-n", "--configfile", str(cfg), check=False, timeout=300)
