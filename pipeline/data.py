"""MNIST: fetch with checksums (local folder first, then mirrors), and load as tensors.

The fetch writes the four uncompressed idx files into `<root>/MNIST/raw/`, the layout that
`torchvision.datasets.MNIST(root, download=False)` reads. Every file is checked against the
MD5 of its uncompressed content; files appear only when all four are verified.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import UserError

if TYPE_CHECKING:  # torch is imported where tensors are made: the data stage needs none
    import torch

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Mean and standard deviation of the training pixels (scaled to [0, 1]).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _from_folder(folder: Path, name: str) -> bytes:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return _maybe_gunzip(candidate.read_bytes())
    raise FileNotFoundError(f"neither {name} nor {name}.gz is in {folder}")


def _from_mirror(mirror: str, name: str, timeout_s: float) -> bytes:
    url = mirror.rstrip("/") + f"/{name}.gz"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - config URL
        return _maybe_gunzip(response.read())


@dataclass(frozen=True)
class Source:
    """One place MNIST can come from: a local folder or a download mirror."""

    kind: str  # "folder" or "mirror"
    location: str

    def read(self, name: str, timeout_s: float) -> bytes:
        if self.kind == "folder":
            return _from_folder(Path(self.location), name)
        return _from_mirror(self.location, name, timeout_s)


def sources(mnist_dir: str | None, mirrors: list[str]) -> list[Source]:
    out = [Source("folder", str(mnist_dir))] if mnist_dir else []
    return out + [Source("mirror", m) for m in mirrors]


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_mnist(
    raw_dir: str | Path,
    md5sums: dict[str, str],
    mnist_dir: str | None = None,
    mirrors: list[str] = (),
    timeout_s: float = 30.0,
) -> list[Path]:
    """Write the four verified, uncompressed MNIST idx files into `raw_dir`.

    Each file is taken from the first source (the local folder `mnist_dir`, then each mirror)
    whose copy has the expected MD5. Nothing is written unless all four files verify; on
    failure a `UserError` names every source tried and what went wrong with it.
    """
    raw_dir = Path(raw_dir)
    if mnist_dir and not Path(mnist_dir).is_dir():
        raise UserError(
            f"The MNIST folder '{mnist_dir}' (config key mnist_dir) does not exist; "
            "set mnist_dir to a folder holding the four MNIST files, "
            "e.g. snakemake --config mnist_dir=PATH."
        )
    tried = sources(mnist_dir, list(mirrors))
    if not tried:
        raise UserError(
            "No MNIST source is configured; set mnist_dir to a folder holding the four MNIST "
            "files (snakemake --config mnist_dir=PATH) or list download mirrors in data.mirrors."
        )
    verified: dict[str, bytes] = {}
    for name in FILES:
        problems = []
        for source in tried:
            try:
                data = source.read(name, timeout_s)
            except Exception as err:  # noqa: BLE001 - every failure is reported, then next source
                problems.append(f"{source.location} ({_short(err)})")
                continue
            if md5(data) == md5sums[name]:
                verified[name] = data
                break
            problems.append(f"{source.location} (checksum mismatch: MD5 {md5(data)})")
        else:
            raise UserError(
                f"Could not get a verified copy of {name} from any source tried: "
                + "; ".join(problems)
                + ". Set mnist_dir (snakemake --config mnist_dir=PATH) to a folder holding "
                "the four MNIST files, .gz or uncompressed."
            )
    raw_dir.mkdir(parents=True, exist_ok=True)
    paths = [raw_dir / name for name in FILES]
    for path in paths:
        _atomic_write(path, verified[path.name])
    return paths


def _short(err: Exception) -> str:
    text = str(getattr(err, "reason", None) or err).strip() or type(err).__name__
    return text.splitlines()[0][:160]


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format) into a numpy array of its declared dtype and shape."""
    data = _maybe_gunzip(Path(path).read_bytes())
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an idx file (bad magic number); re-run the data stage.")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise UserError(
            f"{path} holds {len(body)} bytes of data but its header promises {expected}; "
            "the file is truncated or corrupt, re-run the data stage."
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape)


@dataclass
class MnistTensors:
    """Normalised images `[N, 1, 28, 28]` float32 and labels `[N]` int64, train and test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device: str | torch.device) -> MnistTensors:
        return MnistTensors(*(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)))


def _images(path: Path) -> torch.Tensor:
    import torch

    pixels = torch.from_numpy(read_idx(path).astype(np.float32) / 255.0)
    return ((pixels - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def _labels(path: Path) -> torch.Tensor:
    import torch

    return torch.from_numpy(read_idx(path).astype(np.int64))


def load_mnist(raw_dir: str | Path) -> MnistTensors:
    """Load the four idx files (each uncompressed or .gz) from `raw_dir` (the data stage's
    output folder, or any folder holding MNIST's files)."""
    raw_dir = Path(raw_dir)
    found = {n: next((p for p in (raw_dir / n, raw_dir / f"{n}.gz") if p.is_file()), None) for n in FILES}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise UserError(f"{raw_dir} lacks {', '.join(missing)}; run the data stage first.")
    out = MnistTensors(
        _images(found[FILES[0]]),
        _labels(found[FILES[1]]),
        _images(found[FILES[2]]),
        _labels(found[FILES[3]]),
    )
    for split, x, y in (("train", out.x_train, out.y_train), ("test", out.x_test, out.y_test)):
        if x.shape[0] != y.shape[0]:
            raise UserError(f"MNIST {split} images ({x.shape[0]}) and labels ({y.shape[0]}) differ in count.")
    return out
