"""The GPU check of the MNIST study (`make gpu-check`, via bench/gpu_check.sh): one JSON summary.

1. The GPU tests: `pytest -m gpu` (bf16 vs fp32 step on CUDA, device placement, CUDA-event
   timing), counted from their JUnit XML.
2. The default model (config.yaml's mnist block, part `paper`) trained for --epochs epochs in
   float32 and in bfloat16 on the GPU by the workflow's loop (`pipeline.mnist.train.train`):
   seconds per epoch (CUDA events), images/s, evaluation seconds, accuracies, Lipschitz bounds.
   Data: --mnist-dir, else $MNIST_DIR, else the data stage's output, else a
   synthetic MNIST-shaped set (random images: timings are valid, accuracies are not).
3. bench/bench_mnist.py on the GPU (its own JSON beside the summary).

Writes <out>/gpu_check.json (plus gpu_tests.xml, bench_mnist.json, the training log). Work:
the default model is ~41.5 MFLOP per image forward, ~125 MFLOP per training image, so an epoch
of 60000 images is ~7.5 TFLOP; on an H100 each run is bound by kernel launches and Adam's
memory traffic more than by FLOPs (about 1-3 ms per step of 128, 469 steps): a few seconds
per epoch, about a minute for the whole check plus start-up, within the 5-minute budget.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

BUDGET_S = 300
NEEDED = ("torch", "numpy", "pandas", "yaml", "jsonschema", "tqdm", "pytest")


def fail(sentence: str) -> None:
    print(f"gpu-check: {sentence}", file=sys.stderr)
    sys.exit(1)


def preflight(device: str) -> None:
    """One sentence and exit 1 when there is no CUDA GPU or a module the check needs is missing."""
    import importlib.util

    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if "torch" in missing:
        fail("this Python cannot import torch; run the check with the Python of the machine's CUDA PyTorch.")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        fail("PyTorch sees no CUDA GPU on this machine; run make gpu-check where one is available.")
    if missing:
        names = " ".join(missing)
        fail(f"this Python lacks {names}; install them (pip install -c constraints.txt {names}) and rerun.")


def gpu_tests(out: Path, timeout: float) -> dict:
    xml = out / "gpu_tests.xml"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "gpu",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={xml}",
            "tests",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    result = {"returncode": proc.returncode, "seconds": time.perf_counter() - t0, "tail": proc.stdout[-2000:]}
    if xml.is_file():
        suites = ET.parse(xml).getroot()
        suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
        result |= {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        result["passed"] = result["tests"] - result["failures"] - result["errors"] - result["skipped"]
        result["failed_tests"] = [
            f"{case.get('classname')}::{case.get('name')}"
            for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
    return result


def find_data(given: str | None):
    import torch
    from common import mnist_folders

    from pipeline.data import MnistTensors, load_mnist

    for folder in mnist_folders(given):
        if folder.is_dir():
            try:
                return load_mnist(folder), str(folder)
            except Exception as err:  # noqa: BLE001 - try the next place, say why in the summary
                print(f"gpu-check: {folder}: {err}", file=sys.stderr)
    g = torch.Generator().manual_seed(0)
    data = MnistTensors(
        torch.randn(60000, 1, 28, 28, generator=g),
        torch.randint(0, 10, (60000,), generator=g),
        torch.randn(10000, 1, 28, 28, generator=g),
        torch.randint(0, 10, (10000,), generator=g),
    )
    return data, "synthetic (random images: accuracies meaningless, timings valid)"


def train_both(data, epochs: int, out: Path, device: str, train_subset: int) -> dict:
    import torch

    from pipeline.config import load_config, mnist_part
    from pipeline.mnist.train import train

    cfg = {**mnist_part(load_config(), "paper"), "device": device, "epochs": epochs, "seed": 0}
    if train_subset:
        cfg["train_subset"] = train_subset
    runs = {}
    with open(out / "train.log", "w") as log:
        for precision in ("float32", "bfloat16"):
            t0 = time.perf_counter()
            res = train({**cfg, "precision": precision}, "pair", data, out / f"ck_{precision}", log=log)
            (out / f"ck_{precision}" / "last.pt").unlink(missing_ok=True)
            m, lip = res.metrics, res.lipschitz
            runs[precision] = {
                "wall_seconds": time.perf_counter() - t0,
                "seconds_per_epoch": m["seconds"].tolist(),
                "images_per_s": m["images_per_s"].tolist(),
                "eval_seconds": m["eval_seconds"].tolist(),
                "train_acc": m["train_acc"].tolist(),
                "test_acc": m["test_acc"].tolist(),
                "status": m["status"].tolist(),
                "lipschitz_input": float(lip["lipschitz_input"].max()),
                "lipschitz_input_upper": float(lip["lipschitz_input_upper"].max()),
                "device": res.device,
            }
            if device == "cuda":
                torch.cuda.empty_cache()
    # the first epoch includes CUDA warm-up: compare the later ones
    later = {p: r["seconds_per_epoch"][1:] or r["seconds_per_epoch"] for p, r in runs.items()}
    mean = {p: sum(v) / len(v) for p, v in later.items()}
    return {
        "config": {k: cfg[k] for k in ("batch_size", "depth", "epochs", "train_subset", "eval_train_subset")},
        "runs": runs,
        "bf16_speedup_per_epoch": mean["float32"] / mean["bfloat16"],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "results" / "gpu_check"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--mnist-dir")
    ap.add_argument("--reps", type=int, default=10, help="bench repetitions")
    # Only for trying this driver on a machine without a GPU (the check itself is cuda).
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help=argparse.SUPPRESS)
    ap.add_argument("--train-subset", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    preflight(args.device)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    summary = {
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "none (driver tried on the CPU)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "budget_seconds": BUDGET_S,
    }
    summary["tests"] = gpu_tests(out, timeout=150)
    data, where = find_data(args.mnist_dir)
    summary["data"] = where
    try:
        summary["training"] = train_both(data, args.epochs, out, args.device, args.train_subset)
    except Exception as err:  # noqa: BLE001 - recorded; the bench still runs
        summary["training"] = {"error": f"{type(err).__name__}: {err}"}
    import bench_mnist

    bench_args = ["--device", args.device, "--reps", str(args.reps), "--json", str(out / "bench_mnist.json")]
    bench_args += ["--matmul", "8192"] if args.device == "cuda" else ["--no-loop", "--batch-large", "0"]
    try:
        bench = bench_mnist.main(bench_args)
        summary["bench"] = {k: v for k, v in bench.items() if not isinstance(v, dict)} | {
            "step_seconds": bench["step_seconds"]
        }
    except Exception as err:  # noqa: BLE001
        summary["bench"] = {"error": f"{type(err).__name__}: {err}"}
    summary["wall_seconds"] = time.perf_counter() - t_start
    summary["within_budget"] = summary["wall_seconds"] < BUDGET_S
    tests = summary["tests"]
    summary["ok"] = (
        tests.get("returncode") == 0
        and "error" not in summary["training"]
        and "error" not in summary["bench"]
        and all(s == "ok" for r in summary["training"]["runs"].values() for s in r["status"])
    )
    path = out / "gpu_check.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    tr = summary["training"]
    print(
        f"gpu-check on {summary['gpu']}: tests {tests.get('passed', '?')} passed, "
        f"{tests.get('failures', '?')} failed, {tests.get('skipped', '?')} skipped; "
        + (
            f"bf16 speedup per epoch {tr['bf16_speedup_per_epoch']:.2f}x; "
            if "bf16_speedup_per_epoch" in tr
            else f"training failed ({tr.get('error')}); "
        )
        + f"{summary['wall_seconds']:.0f} s in all; wrote {path}"
    )
    return summary


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["ok"] else 1)
