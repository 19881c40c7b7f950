"""The one registry of the studies: everything else (rules, targets, claims' and report's
inputs, cleaning, cluster resources, tests) is derived from `STUDIES`.

A study `name` has its config block `name:`, its subpackage `pipeline/<name>/` with the same
modules in every study (`model` engine, `study` with `run_shard(cfg, shard) -> tables`,
`summary` with `summary(tables)`, `figures`, `claims`, `checks` with `check(config)`, the rules
between its config keys), its rule file
`workflow/rules/<name>.smk` (rules `<name>_shard -> <name>_aggregate -> <name>_figure`) and its
figure captions `workflow/report/<name>_<figure>.rst`. Its files under `results/<name>/`:

    <group>/shards/<shard>/<table>.parquet   one job's tables (`ShardKind`)
    <group>/<table>.parquet                  the tables concatenated over the group's shards
    <group>/<summary>.<csv|parquet>          what `summary(tables)` derives from them
    figures/<figure>.png (and other formats)

`<group>` is one value of the study's group wildcard (`group`, e.g. the stability study's
`experiment`), or nothing. A table key names an aggregated table: `"<table>"` (every group
concatenated, in group order) or `"<group>/<table>"` (one group). This module imports no
torch: the Snakefile reads it when it is parsed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import canonical, mnist_part, mnist_parts, numbers
from pipeline.data import FILES as MNIST_FILES

MNIST_RAW = "results/data/MNIST/raw"
# Inputs a shard can name (Study.inputs): the files of the data stage.
DATA = {"mnist": [f"{MNIST_RAW}/{name}" for name in MNIST_FILES]}
# Folders of a run that no study owns (`make clean` removes them with the studies' folders).
SHARED_RESULTS = ("data", "report", "logs", "benchmarks")
DIGITS = r"\d+"


@dataclass(frozen=True)
class ShardKind:
    """One kind of training job of a study.

    `pattern`: its folder under `<group>/shards/`, with wildcards; `tables`: the tables it
    writes; `jobs(config)`: the wildcard values of every job (group wildcard included);
    `config(config, wildcards)`: the config slice its numbers depend on (its rule's params).
    """

    rule: str
    pattern: str
    tables: tuple[str, ...]
    jobs: Callable[[Mapping], list[dict]]
    config: Callable[[Mapping, Mapping], dict]


@dataclass(frozen=True)
class Study:
    name: str
    title: str  # section title of the report
    category: str  # category of Snakemake's report
    claims: tuple[int, ...]  # the claim ids its claims module holds
    kinds: tuple[ShardKind, ...]
    wildcards: Mapping[str, str]  # every wildcard of its rules -> its regex
    figures: Mapping[str, tuple[str, ...]]  # figure -> the table keys it reads
    claim_tables: tuple[str, ...]  # table keys its claims read
    summaries: Mapping[str, str] = field(default_factory=lambda: {"summary": "csv"})  # name -> suffix
    group: str | None = None  # the group wildcard
    groups: Callable[[Mapping], list[str]] = lambda config: [""]
    artifacts: Mapping[str, str] = field(default_factory=dict)  # non-table shard outputs -> file name
    inputs: tuple[str, ...] = ()  # DATA entries its shards read
    resources: Mapping[str, int] = field(default_factory=dict)  # cluster runtime (min) and mem_mb
    gpu: bool = False  # its shards may ask for GPUs (config <name>.gpu)

    # ------------------------------------------------------------------ paths --------------
    @property
    def root(self) -> str:
        return f"results/{self.name}"

    def _group_dir(self, group: str | None = None) -> str:
        """`results/<name>/<group>` for a value, the wildcard pattern when None."""
        if self.group is None:
            return self.root
        return f"{self.root}/{group if group is not None else '{' + self.group + '}'}"

    def shard_dir(self, kind: ShardKind) -> str:
        return f"{self._group_dir()}/shards/{kind.pattern}"

    def shard_outputs(self, kind: ShardKind) -> dict[str, str]:
        """{table or artifact: path pattern} of one shard job."""
        out = {t: f"{self.shard_dir(kind)}/{t}.parquet" for t in kind.tables}
        return out | {a: f"{self.shard_dir(kind)}/{f}" for a, f in self.artifacts.items()}

    def scratch(self, kind: ShardKind) -> str:
        """A job's scratch folder (checkpoints): not an output, so a failed or killed job keeps
        it; the job removes it once its outputs are written."""
        return f"{self.shard_dir(kind)}/checkpoints"

    @property
    def tables(self) -> tuple[str, ...]:
        """Every shard table, in kind order."""
        return tuple(dict.fromkeys(t for k in self.kinds for t in k.tables))

    def aggregate_outputs(self) -> dict[str, str]:
        """{table or summary: path pattern} of the aggregate job (one per group)."""
        out = {t: f"{self._group_dir()}/{t}.parquet" for t in self.tables}
        return out | {s: f"{self._group_dir()}/{s}.{suffix}" for s, suffix in self.summaries.items()}

    def figure_output(self) -> str:
        return f"{self.root}/figures/{{figure}}.png"

    # ------------------------------------------------------------------ what a config runs --
    def jobs(self, config: Mapping, kind: ShardKind | None = None) -> list[dict]:
        if config.get("studies") is not None and self.name not in config["studies"]:
            return []
        kinds = self.kinds if kind is None else [kind]
        return [job for k in kinds for job in k.jobs(config)]

    def enabled(self, config: Mapping) -> bool:
        return bool(self.jobs(config))

    def active_groups(self, config: Mapping) -> list[str]:
        return self.groups(config) if self.enabled(config) else []

    def aggregate_inputs(self, config: Mapping, group: str = "") -> list[str]:
        """Every shard table of one group, in job order."""
        paths = []
        for kind in self.kinds:
            for job in kind.jobs(config):
                if self.group is None or str(job[self.group]) == group:
                    paths += [
                        p.format(**job) for p in self.shard_outputs(kind).values() if p.endswith(".parquet")
                    ]
        return paths

    def table_paths(self, config: Mapping, key: str) -> list[str]:
        """The aggregated files of a table key ([] where no shard writes it)."""
        group, _, name = key.rpartition("/")
        groups = [g for g in self.active_groups(config) if not group or g == group]
        if name in self.tables:
            writers = [k for k in self.kinds if name in k.tables and k.jobs(config)]
            if not writers:
                return []
        outputs = self.aggregate_outputs()
        return [outputs[name].format(**({self.group: g} if self.group else {})) for g in groups]

    def figures_run(self, config: Mapping) -> list[str]:
        """The figures a config draws: those whose every table has a shard that writes it."""
        return [f for f, keys in self.figures.items() if all(self.table_paths(config, k) for k in keys)]

    def figure_inputs(self, config: Mapping, figure: str) -> dict[str, list[str]]:
        """{table name: files} of one figure (the name is the key's last part)."""
        return {key.rpartition("/")[2]: self.table_paths(config, key) for key in self.figures[figure]}

    def outputs(self, config: Mapping) -> dict[str, list[str]]:
        """{"tables": aggregated files, "figures": png files} of a config (empty when off)."""
        tables = [
            path.format(**({self.group: g} if self.group else {}))
            for g in self.active_groups(config)
            for name, path in self.aggregate_outputs().items()
            if name not in self.tables or self.table_paths(config, name)
        ]
        figures = [self.figure_output().format(figure=f) for f in self.figures_run(config)]
        return {"tables": tables, "figures": figures}

    def claim_inputs(self, config: Mapping) -> dict[str, list[str]]:
        """{"<name>/<key>": files} of the tables the claims read (those a config writes)."""
        found = {f"{self.name}/{key}": self.table_paths(config, key) for key in self.claim_tables}
        return {k: v for k, v in found.items() if v}

    # ------------------------------------------------------------------ code a job runs -----
    def module(self, job: str) -> str:
        """The library module of this study for a job: study, summary, figures, claims or checks."""
        return f"pipeline.{self.name}.{job}"


# ---------------------------------------------------------------------- stability ---------
EXPERIMENTS = ("scalar", "depth", "single_vs_double")


def _stability_groups(config):
    st = config["stability"]
    return [e for e in EXPERIMENTS if st["enabled"] and st[e]["enabled"]]


def _stability_config(config, wildcards):
    """The engine settings and the experiment's block, without its depth list."""
    e = wildcards["experiment"]
    return canonical(
        {
            **numbers(config, "stability", drop=("enabled", *EXPERIMENTS)),
            e: numbers(config, f"stability.{e}", drop=("enabled", "depths")),
        }
    )


STABILITY = Study(
    name="stability",
    title="Lyapunov stability of gradient descent (docs/science.md sections 1-2)",
    category="Stability",
    claims=(1, 2, 3, 4),
    group="experiment",
    groups=_stability_groups,
    kinds=(
        ShardKind(
            rule="stability_shard",
            pattern="L{depth}",
            tables=("runs", "curves"),
            jobs=lambda config: [
                {"experiment": e, "depth": d}
                for e in _stability_groups(config)
                for d in config["stability"][e]["depths"]
            ],
            config=_stability_config,
        ),
    ),
    wildcards={"experiment": "|".join(EXPERIMENTS), "depth": DIGITS},
    figures={
        "phase_diagram": ("scalar/runs",),
        "sharpness": ("scalar/runs",),
        "depth": ("depth/runs",),
        "depth_region": ("depth/runs",),
        "single_vs_double": ("single_vs_double/runs", "single_vs_double/curves"),
    },
    claim_tables=("scalar/runs", "depth/runs", "single_vs_double/runs"),
    resources={"runtime": 60, "mem_mb": 2000},
)


# ---------------------------------------------------------------------- bias1d ------------
BIAS1D = Study(
    name="bias1d",
    title="Convex residual pairs in 1-D: bias initialisation (docs/science.md sections 3-4)",
    category="1-D bias study",
    claims=(5, 6, 9),
    kinds=(
        ShardKind(
            rule="bias1d_shard",
            pattern="L{depth}",
            tables=(
                "runs",
                "snapshots",
                "estimates",
                "curves",
                "layers",
                "points",
                "truth",
                "progress",
                "timing",
            ),
            jobs=lambda config: (
                [{"depth": d} for d in config["bias1d"]["depths"]] if config["bias1d"]["enabled"] else []
            ),
            config=lambda config, wildcards: numbers(config, "bias1d", drop=("enabled", "depths")),
        ),
    ),
    wildcards={"depth": DIGITS},
    summaries={"summary": "csv", "robustness": "parquet", "updates": "csv"},
    figures={
        "fit": ("runs", "estimates", "points", "truth"),
        "drift": ("robustness",),
        "lipschitz": ("runs",),
        "budget": ("robustness",),
        "updates_loss": ("runs", "progress"),
        "updates_generalisation": ("runs",),
        "updates_fit": ("runs", "estimates", "points", "truth"),
    },
    claim_tables=("runs", "snapshots", "progress", "timing"),
    resources={"runtime": 120, "mem_mb": 4000},
)


# ---------------------------------------------------------------------- mnist -------------
VARIANTS = ("pair", "convex_only", "plain_mlp")


def _mnist_variants(config):
    """Variants in the order the parts first name them."""
    return list(dict.fromkeys(v for p in mnist_parts(config).values() for v in p["variants"]))


MNIST = Study(
    name="mnist",
    title="MNIST with 20 convex residual networks (docs/science.md section 5)",
    category="MNIST",
    claims=(7,),
    group="variant",
    groups=_mnist_variants,
    kinds=(
        ShardKind(
            rule="mnist_shard",
            pattern="{part}-seed{seed}",
            tables=("metrics", "drift", "lipschitz"),
            jobs=lambda config: [
                {"variant": v, "part": name, "seed": s}
                for v in _mnist_variants(config)
                for name, part in mnist_parts(config).items()
                if v in part["variants"]
                for s in part["seeds"]
            ],
            # the part's numbers without its variant and seed lists: adding one trains only that one
            config=lambda config, wildcards: mnist_part(config, wildcards["part"]),
        ),
    ),
    wildcards={"variant": "|".join(VARIANTS), "part": r"[A-Za-z0-9_]+", "seed": DIGITS},
    figures={"accuracy": ("metrics",), "gap": ("metrics",), "drift": ("drift",)},
    claim_tables=("metrics",),
    artifacts={"model": "model.pt"},
    inputs=("mnist",),
    resources={"runtime": 240, "mem_mb": 16000},
    gpu=True,
)


# ---------------------------------------------------------------------- stepsize ----------
STEPSIZE_BLOCKS = ("scalar", "matrix", "basin")
# The config block of each problem.
STEPSIZE_BLOCK_OF = {"scalar": "scalar", "single": "matrix", "double": "matrix", "basin": "basin"}


def _stepsize_jobs(config, problems):
    s = config["stepsize"]
    return [
        {"problem": p, "depth": d} if p != "basin" else {"depth": d}
        for p in problems
        if s["enabled"]
        and s[STEPSIZE_BLOCK_OF[p]]["enabled"]
        and (STEPSIZE_BLOCK_OF[p] != "matrix" or p in s["matrix"]["networks"])
        for d in s[STEPSIZE_BLOCK_OF[p]]["depths"]
    ]


def _stepsize_config(config, wildcards):
    """The engine and rule settings and the problem's block, without its grid lists."""
    block = STEPSIZE_BLOCK_OF[wildcards.get("problem", "basin")]
    return canonical(
        {
            **numbers(config, "stepsize", drop=("enabled", *STEPSIZE_BLOCKS)),
            block: numbers(config, f"stepsize.{block}", drop=("enabled", "depths", "networks")),
        }
    )


STEPSIZE = Study(
    name="stepsize",
    title="State-dependent step sizes, ours (docs/science.md section 6.1)",
    category="Step sizes",
    claims=(8,),
    kinds=(
        ShardKind(
            rule="stepsize_shard",
            pattern="{problem}_L{depth}",
            tables=("runs", "curves"),
            jobs=lambda config: _stepsize_jobs(config, ("scalar", "single", "double")),
            config=_stepsize_config,
        ),
        ShardKind(
            rule="stepsize_basin",
            pattern="basin_L{depth}",
            tables=("basins",),
            jobs=lambda config: _stepsize_jobs(config, ("basin",)),
            config=_stepsize_config,
        ),
    ),
    wildcards={"problem": "scalar|single|double", "depth": DIGITS},
    figures={"success": ("runs",), "cost_depth": ("runs",), "basins": ("basins",)},
    claim_tables=("runs",),
    resources={"runtime": 60, "mem_mb": 4000},
)


# ---------------------------------------------------------------------- edge --------------
EDGE_BLOCKS = ("scalar", "matrix", "maps")
EDGE_MAPS = ("delta_a", "w1_w2")


def _edge_jobs(config, kind):
    e = config["edge"]
    if not e["enabled"] or not e[kind]["enabled"]:
        return []
    if kind == "scalar":
        return [{"depth": d} for d in e["scalar"]["depths"]]
    if kind == "matrix":
        return [{"network": n, "depth": d} for n in e["matrix"]["networks"] for d in e["matrix"]["depths"]]
    return [
        {"map": m, "depth": d} for m in EDGE_MAPS if e["maps"][m]["enabled"] for d in e["maps"][m]["depths"]
    ]


def _edge_config(config, wildcards):
    """The engine settings and the block of the shard's kind (a map: only that map's block),
    without the grid lists that make the jobs."""
    if "map" in wildcards:
        block = numbers(config, "edge.maps", drop=("enabled", *EDGE_MAPS))
        block[wildcards["map"]] = numbers(config, f"edge.maps.{wildcards['map']}", drop=("enabled", "depths"))
        kind = {"maps": canonical(block)}
    else:
        name = "matrix" if "network" in wildcards else "scalar"
        kind = {name: numbers(config, f"edge.{name}", drop=("enabled", "depths", "networks"))}
    return canonical({**numbers(config, "edge", drop=("enabled", *EDGE_BLOCKS)), **kind})


EDGE = Study(
    name="edge",
    title="Between 2/phi and delta*: the edge of stability, ours (docs/science.md section 6.3)",
    category="Edge of stability",
    claims=(10, 11),
    kinds=(
        ShardKind(
            rule="edge_scalar",
            pattern="scalar_L{depth}",
            tables=("runs", "traces"),
            jobs=lambda config: _edge_jobs(config, "scalar"),
            config=_edge_config,
        ),
        ShardKind(
            rule="edge_matrix",
            pattern="{network}_L{depth}",
            tables=("matrix_runs", "sharpness"),
            jobs=lambda config: _edge_jobs(config, "matrix"),
            config=_edge_config,
        ),
        ShardKind(
            rule="edge_map",
            pattern="map_{map}_L{depth}",
            tables=("windows", "dimension"),
            jobs=lambda config: _edge_jobs(config, "maps"),
            config=_edge_config,
        ),
    ),
    wildcards={"network": "single|double", "map": "|".join(EDGE_MAPS), "depth": DIGITS},
    figures={
        "traces": ("runs", "traces"),
        "final_sharpness": ("runs",),
        "maps": ("windows",),
        "box_counting": ("dimension",),
        "matrix_sharpness": ("matrix_runs", "sharpness"),
    },
    claim_tables=("runs", "dimension"),
    resources={"runtime": 60, "mem_mb": 4000},
)


# ---------------------------------------------------------------------- the registry ------
STUDIES: tuple[Study, ...] = (STABILITY, BIAS1D, MNIST, STEPSIZE, EDGE)
BY_NAME = {s.name: s for s in STUDIES}
# The report's own figures (of the claims): name -> the report tables it reads.
REPORT_FIGURES = {"robustness": ("settings",)}


def get(name: str) -> Study:
    return BY_NAME[name]


def kind(rule: str) -> tuple[Study, ShardKind]:
    """The study and shard kind of a shard rule."""
    for study in STUDIES:
        for k in study.kinds:
            if k.rule == rule:
                return study, k
    raise KeyError(rule)


def results_folders() -> list[str]:
    """Every folder under results/ a run writes: the studies' and the shared ones."""
    return [s.root for s in STUDIES] + [f"results/{name}" for name in SHARED_RESULTS]


def main(argv: Iterable[str]) -> None:
    """`python -m pipeline.studies results-folders`: the folders `make clean` removes."""
    (command,) = argv
    if command != "results-folders":
        raise SystemExit(f"unknown command {command!r}; use results-folders")
    print(" ".join(results_folders()) + " " + str(Path(".snakemake")))


if __name__ == "__main__":
    main(sys.argv[1:])
