"""MNIST data stage: checksums, sources in order, atomic all-or-nothing writes, the loader."""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from pipeline import data
from pipeline.errors import UserError
from tests.helpers import write_idx


def test_fetch_from_gz_folder_verifies_and_decompresses(fake_mnist, tmp_path):
    folder, md5 = fake_mnist
    out = tmp_path / "out" / "MNIST" / "raw"
    paths = data.fetch_mnist(out, md5, mnist_dir=str(folder))
    assert [p.name for p in paths] == list(data.FILES)
    for p in paths:
        assert hashlib.md5(p.read_bytes()).hexdigest() == md5[p.name]
        assert p.read_bytes()[:2] == b"\x00\x00"  # uncompressed idx, not gzip
    assert not list(out.glob("*.part"))


def test_fetch_accepts_uncompressed_files(tmp_path):
    from tests.helpers import make_fake_mnist

    md5 = make_fake_mnist(tmp_path / "src", compress=False)
    paths = data.fetch_mnist(tmp_path / "raw", md5, mnist_dir=str(tmp_path / "src"))
    assert len(paths) == 4


def test_wrong_checksum_fails_naming_source_and_key_and_writes_nothing(fake_mnist, tmp_path):
    folder, md5 = fake_mnist
    bad = dict(md5, **{"t10k-labels-idx1-ubyte": "0" * 32})
    out = tmp_path / "raw"
    with pytest.raises(UserError) as err:
        data.fetch_mnist(out, bad, mnist_dir=str(folder))
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte" in msg and "checksum mismatch" in msg
    assert str(folder) in msg and "mnist_dir" in msg
    # all-or-nothing: the three good files were not written either
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_gzip_is_reported_not_crashed(fake_mnist, tmp_path):
    folder, md5 = fake_mnist
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(UserError, match="train-labels-idx1-ubyte"):
        data.fetch_mnist(tmp_path / "raw", md5, mnist_dir=str(folder))


def test_missing_folder_is_one_clear_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist; set mnist_dir"):
        data.fetch_mnist(tmp_path / "raw", {}, mnist_dir=str(tmp_path / "nope"))


def test_falls_through_to_mirror_and_names_every_source(fake_mnist, tmp_path):
    folder, md5 = fake_mnist
    empty = tmp_path / "empty"
    empty.mkdir()
    mirror = f"file://{folder}"
    paths = data.fetch_mnist(tmp_path / "raw", md5, mnist_dir=str(empty), mirrors=[mirror])
    assert len(paths) == 4
    unreachable = "http://127.0.0.1:9/mnist"  # discard port: connection refused at once
    with pytest.raises(UserError) as err:
        data.fetch_mnist(tmp_path / "raw2", md5, mnist_dir=str(empty), mirrors=[unreachable], timeout_s=2)
    assert str(empty) in str(err.value) and unreachable in str(err.value)


def test_read_idx_roundtrip_and_truncation(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = write_idx(tmp_path / "a-idx3-ubyte", arr)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a-idx3-ubyte"), arr)
    (tmp_path / "b").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "b"), arr)
    (tmp_path / "c").write_bytes(raw[:-1])
    with pytest.raises(UserError, match="truncated"):
        data.read_idx(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match="not an idx file"):
        data.read_idx(tmp_path / "d")


def test_loader_normalises_and_matches_torchvision(fake_mnist, tmp_path):
    folder, md5 = fake_mnist
    root = tmp_path / "results_data"
    data.fetch_mnist(root / "MNIST" / "raw", md5, mnist_dir=str(folder))
    t = data.load_mnist(root / "MNIST" / "raw")
    assert t.x_train.shape == (60, 1, 28, 28) and t.x_train.dtype == torch.float32
    assert t.y_train.dtype == torch.int64 and t.x_test.shape == (20, 1, 28, 28)
    # normalisation: pixel p maps to (p/255 - mean)/std
    assert torch.isclose(t.x_train.max(), torch.tensor((1 - data.MNIST_MEAN) / data.MNIST_STD))
    # the layout torchvision reads, with the same images and labels
    import torchvision

    tv = torchvision.datasets.MNIST(str(root), train=True, download=False)
    np.testing.assert_array_equal(tv.targets.numpy(), t.y_train.numpy())
    pixels = (t.x_train[:, 0] * data.MNIST_STD + data.MNIST_MEAN) * 255
    np.testing.assert_allclose(pixels.numpy(), tv.data.numpy().astype(np.float32), atol=1e-3)


def test_loader_reports_missing_files(tmp_path):
    with pytest.raises(UserError, match="run the data stage first"):
        data.load_mnist(tmp_path)
