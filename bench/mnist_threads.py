"""Is MNIST training bit-identical across thread counts? (not a test): the same run (seed, data,
config) trained with 1 and with 2 intra-op threads, its metrics side by side. Reductions
(matmul blocking, sums) are split differently across threads, so float rounding can differ;
this says by how much it shows in the metrics.

    .venv/bin/python bench/mnist_threads.py [--mnist-dir DIR] [--train-subset 2000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch
from common import mnist_folders

from pipeline.config import load_config
from pipeline.data import load_mnist
from pipeline.mnist.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir")
    ap.add_argument("--train-subset", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--variant", default="pair")
    a = ap.parse_args()
    folder = next(f for f in mnist_folders(a.mnist_dir) if f.is_dir())
    data = load_mnist(folder)
    cfg = {**load_config()["mnist"], "seed": 0, "epochs": a.epochs, "train_subset": a.train_subset,
           "eval_train_subset": 2000, "test_subset": 2000, "device": "cpu"}  # fmt: skip
    out = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as ck:
            m = train(cfg, a.variant, data, ck, log=open(os.devnull, "w")).metrics
        out[threads] = m[["epoch", "train_acc", "test_acc", "train_loss", "test_loss"]].reset_index(drop=True)
        print(f"{threads} thread(s):\n{out[threads].to_string(index=False)}")
    diff = (out[1].drop(columns="epoch") - out[2].drop(columns="epoch")).abs().max()
    print("largest |1 thread - 2 threads|:", diff.to_dict())
    sys.exit(0)


if __name__ == "__main__":
    main()
