"""The MNIST study (docs/science.md section 5): config slice -> one trained model -> tables.

Runs come in named parts (`mnist.parts`): each part shares every setting of the mnist block
except a few overrides (`pipeline.config.MNIST_PART_KEYS`) and has its own variants and seeds.
A shard is one variant of one part trained from one seed (wildcards `variant`, `part`,
`seed`): `run_shard(cfg, shard)` (cfg: `pipeline.config.mnist_part(config, part)`) loads the
data stage's files (`shard.inputs["mnist"]`), trains (resuming from the checkpoint in the
shard's scratch folder when one of the same settings exists), writes the final model state to
the artifact `shard.artifacts["model"]`, and returns the tables `metrics` (one row per epoch),
`drift` (per epoch, network and layer) and `lipschitz` (per class), each with `variant`,
`part` and `seed` columns. `summary.summary` gives one row per variant, part and seed.
"""

from __future__ import annotations

import pandas as pd
import torch

from pipeline.data import load_mnist
from pipeline.mnist.train import train
from pipeline.shard import Shard

TABLES = ("metrics", "drift", "lipschitz")


def run_shard(cfg: dict, shard: Shard) -> dict[str, pd.DataFrame]:
    """Train one variant of one part from one seed; the tables of TABLES (the model state goes
    to the artifact `model`)."""
    variant, part, seed = shard["variant"], shard["part"], int(shard["seed"])
    cfg = {**cfg, "seed": seed}
    data = load_mnist(shard.inputs["mnist"][0].parent)
    shard.log(f"{variant}, part {part}, seed {seed}: {cfg['epochs']} epochs")
    out = train(cfg, variant, data, shard.scratch, shard.log.stream, shard.progress)
    tables = {"metrics": out.metrics, "drift": out.drift, "lipschitz": out.lipschitz}
    for table in tables.values():  # appended: metrics keeps its contract columns first
        table["part"] = part
        table["seed"] = seed
    tables["metrics"]["device"] = out.device
    model = {
        "variant": variant,
        "part": part,
        "seed": seed,
        "config": cfg,
        "device": out.device,
        "state": out.state,
    }
    torch.save(model, shard.artifacts["model"])
    return tables
