"""End to end: the smoke configuration runs and the data stage behaves as a user expects."""

import hashlib

import pytest
import yaml

from pipeline.data import FILES
from tests.helpers import REAL_MNIST, copy_repo, make_fake_mnist, snakemake

pytestmark = pytest.mark.workflow


def test_smoke_run_writes_verified_mnist(smoke_run):
    work, args = smoke_run
    raw = work / "results" / "data" / "MNIST" / "raw"
    for name in FILES:
        assert (raw / name).is_file()
    # a second invocation has nothing to do
    proc = snakemake(work, "-n", *args)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_corrupt_file_fails_the_job_with_one_sentence_and_no_output(tmp_path):
    work = copy_repo(tmp_path / "wf")
    md5 = make_fake_mnist(tmp_path / "mnist")
    md5["train-images-idx3-ubyte"] = hashlib.md5(b"something else").hexdigest()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({"mnist_dir": str(tmp_path / "mnist"), "data": {"md5": md5, "mirrors": []}})
    )
    proc = snakemake(work, "mnist_data", "--cores", "1", "--configfile", str(cfg), check=False, timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Error: Could not get a verified copy of train-images-idx3-ubyte" in out
    assert "checksum mismatch" in out and "Traceback" not in out
    assert not (work / "results" / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert not list((work / "results" / "data").rglob("*-ubyte"))


@pytest.mark.skipif(REAL_MNIST is None or not REAL_MNIST.is_dir(), reason="MNIST_DIR names no folder")
def test_real_mnist_from_local_folder(tmp_path):

    work = copy_repo(tmp_path / "wf")
    snakemake(work, "--cores", "1", "mnist_data", "--config", f"mnist_dir={REAL_MNIST}", timeout=300)
    from pipeline.data import load_mnist

    t = load_mnist(work / "results" / "data" / "MNIST" / "raw")
    assert t.x_train.shape == (60000, 1, 28, 28) and t.x_test.shape == (10000, 1, 28, 28)
    assert abs(float(t.x_train.mean())) < 1e-3 and abs(float(t.x_train.std()) - 1) < 1e-2
