"""Shared test fixtures: tiny idx files written by the tests themselves, repo paths."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The real MNIST, where this workplace provides it; tests that need it skip elsewhere.
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


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
    import hashlib

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


@pytest.fixture
def fake_mnist(tmp_path):
    folder = tmp_path / "mnist_src"
    md5 = make_fake_mnist(folder)
    return folder, md5


def copy_repo(dest: Path) -> Path:
    """A copy of the workflow (no results, no venv) to run snakemake in."""
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "results", ".snakemake", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900):
    """Run the venv's snakemake in `workdir`; returns the CompletedProcess (text)."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke configuration run once end to end on synthetic MNIST files.

    Returns the workflow copy's directory (its results/ holds every output) and the
    snakemake arguments that select this configuration.
    """
    import yaml

    root = tmp_path_factory.mktemp("smoke")
    work = copy_repo(root / "wf")
    md5 = make_fake_mnist(root / "mnist", n_train=600, n_test=200)
    (root / "override.yaml").write_text(
        yaml.safe_dump({"mnist_dir": str(root / "mnist"), "data": {"md5": md5, "mirrors": []}})
    )
    args = ("--configfile", "config/smoke.yaml", str(root / "override.yaml"))
    snakemake(work, "--cores", "2", *args)
    return work, args


@pytest.fixture(scope="session")
def workflow_copy(tmp_path_factory):
    """A copy of the workflow for dry runs (snakemake -n) that write nothing lasting."""
    return copy_repo(tmp_path_factory.mktemp("cfg") / "wf")


def dry_run(work: Path, overrides: dict, tmp_path: Path):
    """`snakemake -n` with `overrides` stacked on config.yaml; returns the CompletedProcess."""
    import yaml

    cfg = tmp_path / "overrides.yaml"
    cfg.write_text(yaml.safe_dump(overrides))
    return snakemake(work, "-n", "--configfile", str(cfg), check=False, timeout=300)


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test (small tensors gain nothing from more)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
