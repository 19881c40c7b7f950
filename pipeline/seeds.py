"""One way to seed every random draw: a seed derived from a key that names what the draw is for.

`derive_seed("stability", "scalar", "init", L, r, s, init, seed)` is a 63-bit integer, the
same on every machine and run; a new purpose or replicate gives an unrelated stream.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported by generator() only: claim and figure jobs need no torch
    import torch


def derive_seed(*key) -> int:
    """A 63-bit seed from any key (study, purpose, depth, replicate, ...)."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*key) -> torch.Generator:
    """A CPU torch generator seeded from `key`."""
    import torch

    return torch.Generator().manual_seed(derive_seed(*key))


def numpy_rng(*key) -> np.random.Generator:
    """A numpy generator seeded from `key`."""
    return np.random.default_rng(derive_seed(*key))
