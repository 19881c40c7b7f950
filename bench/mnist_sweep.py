"""Tuning sweep of the MNIST study (not a test): named overrides of the mnist block, each trained
on a validation split (never the test set), one row per setting, seed and epoch.

The grid is a YAML file (see config/mnist_sweep.yaml):

    base:      overrides of config.yaml's mnist block for every setting; together with a
               setting they must hold out a validation split (mnist.validation > 0)
    variant:   the model variant (default pair)
    seeds:     seeds of every setting (default [0])
    settings:  {name: overrides of the mnist block, ...}

Each setting is config.yaml's mnist block with `base`, then the setting, merged on top and
validated like a workflow config; training is `pipeline.mnist.train.train`, the workflow's
loop. Finished runs are kept under <out>/runs/ and reused when their settings are unchanged,
so a grown grid trains only its new settings; an interrupted run resumes from its checkpoint.
Writes <out>/sweep.csv and <out>/sweep.json and prints the last epoch of every run.

Usage: .venv/bin/python bench/mnist_sweep.py --grid config/mnist_sweep.yaml
       [--mnist-dir DIR] [--out results/mnist_sweep] [--threads N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from common import mnist_folders  # noqa: E402

from pipeline.config import load_config, merge, numbers  # noqa: E402
from pipeline.data import load_mnist  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.mnist.train import train  # noqa: E402

GRID_KEYS = {"base", "variant", "seeds", "settings"}
SHOWN = [
    "setting",
    "seed",
    "epoch",
    "train_acc",
    "val_acc",
    "train_loss",
    "val_loss",
    "seconds",
    "eval_seconds",
]


def read_grid(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"The sweep grid {path} does not exist; pass --grid PATH to a YAML file.")
    grid = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(grid) - GRID_KEYS)
    if unknown:
        raise UserError(
            f"The sweep grid {path} has unknown keys {', '.join(unknown)} "
            f"(known: {', '.join(sorted(GRID_KEYS))}); check their spelling."
        )
    if not grid.get("settings"):
        raise UserError(f"The sweep grid {path} has no settings; add settings: {{name: {{...}}}}.")
    return grid


def setting_config(grid: dict, name: str) -> dict:
    """The validated mnist numbers of one setting (config.yaml <- base <- setting)."""
    over = merge(copy.deepcopy(grid.get("base") or {}), grid["settings"][name] or {})
    try:
        config = load_config({"mnist": over})
    except UserError as err:
        raise UserError(f"Sweep setting '{name}': {err}") from None
    cfg = numbers(config, "mnist", drop=("enabled", "parts"))
    if cfg["validation"] <= 0:
        raise UserError(
            f"Sweep setting '{name}' has mnist.validation = 0 and would evaluate on the test set; "
            "set validation (held-out training images) in the grid's base."
        )
    return cfg


def data_dir(given: str | None) -> Path:
    folders = mnist_folders(given)
    for folder in folders:
        if folder.is_dir():
            return folder
    looked = ", ".join(map(str, folders))
    raise UserError(f"No MNIST folder found (looked in {looked}); pass --mnist-dir DIR.")


def run_one(cfg: dict, variant: str, seed: int, data, out: Path, name: str) -> pd.DataFrame:
    """Metrics of one setting and seed: reused from <out>/runs/ when the settings are the same."""
    run = out / "runs" / f"{name}-seed{seed}.json"
    cfg = {**cfg, "seed": int(seed)}
    if run.is_file():
        kept = json.loads(run.read_text())
        if kept["cfg"] == json.loads(json.dumps(cfg)) and kept["variant"] == variant:
            print(f"{name} seed {seed}: reusing {run}", file=sys.stderr)
            return pd.DataFrame(kept["rows"])
    ckpt = out / "checkpoints" / f"{name}-seed{seed}"
    print(f"--- {name} seed {seed}", file=sys.stderr, flush=True)
    metrics = train(cfg, variant, data, ckpt, log=sys.stderr, progress_stream=sys.stderr).metrics
    metrics.insert(0, "setting", name)
    metrics.insert(1, "seed", int(seed))
    run.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(metrics.to_json(orient="records"))
    run.write_text(json.dumps({"cfg": cfg, "variant": variant, "rows": rows}, indent=1) + "\n")
    shutil.rmtree(ckpt, ignore_errors=True)
    return metrics


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=str(REPO / "config" / "mnist_sweep.yaml"), help="the grid (YAML)")
    ap.add_argument("--mnist-dir", help="folder with the four MNIST files (.gz or not)")
    ap.add_argument("--out", default=str(REPO / "results" / "mnist_sweep"), help="output folder")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    ap.add_argument("--only", nargs="*", help="run only these settings")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = read_grid(Path(args.grid))
    names = list(grid["settings"])
    if args.only:
        missing = sorted(set(args.only) - set(names))
        if missing:
            raise UserError(f"--only names settings the grid lacks ({', '.join(missing)}).")
        names = [n for n in names if n in args.only]
    configs = {name: setting_config(grid, name) for name in names}  # every setting checked first
    data = load_mnist(data_dir(args.mnist_dir))
    out = Path(args.out)
    variant, seeds = grid.get("variant", "pair"), grid.get("seeds", [0])
    frames = []
    for name in names:
        for seed in seeds:
            frames.append(run_one(configs[name], variant, seed, data, out, name))
            table = pd.concat(frames, ignore_index=True)
            table.to_csv(out / "sweep.csv", index=False)  # after every run: partial results survive
    (out / "sweep.json").write_text(
        json.dumps(
            {"grid": str(args.grid), "variant": variant, "rows": json.loads(table.to_json(orient="records"))}
        )
        + "\n"
    )
    last = table.loc[table.groupby(["setting", "seed"], sort=False)["epoch"].idxmax()]
    shown = last.rename(columns={"test_acc": "val_acc", "test_loss": "val_loss"})[SHOWN]
    best = table.groupby(["setting", "seed"], sort=False)["test_acc"].max().rename("best_val_acc")
    shown = shown.merge(best.reset_index(), on=["setting", "seed"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out / 'sweep.csv'} and {out / 'sweep.json'}")
    return table


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(1)
