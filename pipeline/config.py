"""The workflow's config: schema validation, the rules between keys, and the slices rules use.

`validate` runs when the Snakefile is parsed, so `snakemake -n` already fails on a bad
config, with one sentence naming the key: first the JSON Schema (types, ranges, unknown
keys; it also fills in every default), then `check_relations`, the rules that tie keys
together (an interval's low below its high, a figure setting naming a regime or seed that
the grid has, ...).

Rules pass config to their jobs through `params`, which Snakemake compares with the last run
to decide what to re-run. `numbers` gives the slice of a block that can change a result:
without the runtime keys (threads, GPUs, where the data come from), and with its
mappings in sorted key order, so that the same values merged from config files in another
order compare equal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from importlib import import_module
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

from pipeline.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# Keys that change no number of any table or figure: they are kept out of every rule's params
# (jobs read them from `snakemake.config` or get them as threads / resources), so changing
# them re-runs nothing. Besides these, the keys STUDY_RUNTIME_KEYS of every top-level block
# (`<study>.threads`, `<study>.gpu`): see `runtime_keys`.
RUNTIME_KEYS = frozenset({"mnist_dir", "data.mirrors", "data.timeout_s"})
STUDY_RUNTIME_KEYS = ("threads", "gpu")


def runtime_keys(config: Mapping) -> frozenset[str]:
    """Every runtime key of `config`: RUNTIME_KEYS and each block's STUDY_RUNTIME_KEYS."""
    blocks = {
        f"{b}.{k}" for b, v in config.items() if isinstance(v, Mapping) for k in STUDY_RUNTIME_KEYS if k in v
    }
    return RUNTIME_KEYS | blocks


# ------------------------------------------------------------------ loading, validating ---


def _with_defaults(cls):
    """A validator class that fills in each property's `default` before validating it."""
    check_properties = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(cls, {"properties": properties})


_Validator = _with_defaults(Draft202012Validator)


def load_schema(path: str | Path = SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Validate `config` in place (filling defaults), check the rules between keys, return it.

    Raises `UserError` with one sentence naming the offending key for the first error found.
    """
    errors = sorted(
        _Validator(load_schema(schema_path)).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise UserError(describe(errors[0]))
    check_relations(config)
    return config


def describe(error) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        where = f"under {key}" if error.absolute_path else "at the top level"
        names = ", ".join(map(repr, unknown))
        return f"Unknown config key {names} {where} (known keys: {known}); check its spelling."
    desc = error.schema.get("description", "")
    hint = f" ({' '.join(desc.split()).rstrip('.')})" if desc else ""
    return f"Config key {key} = {error.instance!r} is invalid: {error.message}{hint}."


def merge(base: dict, override: Mapping) -> dict:
    """Deep-merge `override` into `base` (in place), as Snakemake stacks config files."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(*overrides: str | Path | Mapping) -> dict:
    """config.yaml with `overrides` (files or dicts) stacked on it, validated: what a run uses."""
    config = yaml.safe_load(CONFIG.read_text())
    for over in overrides:
        merge(config, over if isinstance(over, Mapping) else yaml.safe_load(Path(over).read_text()) or {})
    return validate(config)


# ------------------------------------------------------------------ slices for params ----


def canonical(value):
    """`value` with every mapping's keys in sorted order (recursively)."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def numbers(config: Mapping, path: str, drop: Iterable[str] = ()) -> dict:
    """The block at dotted `path` without runtime keys and without `drop`, canonical.

    What a rule passes as params: exactly the values its numbers depend on.
    """
    block = config
    for part in path.split("."):
        block = block[part]
    skip = set(drop) | {k[len(path) + 1 :] for k in runtime_keys(config) if k.startswith(path + ".")}
    return canonical({k: v for k, v in block.items() if k not in skip})


# What a part of the MNIST study (`mnist.parts.<name>`) may set besides its variants and seeds.
MNIST_PART_KEYS = ("epochs", "train_subset", "test_subset")


def mnist_parts(config: Mapping) -> dict[str, dict]:
    """The MNIST parts that are run ({} when the study is off; a part set to null is not run)."""
    m = config["mnist"]
    return {name: part for name, part in m["parts"].items() if part is not None} if m["enabled"] else {}


def mnist_part(config: Mapping, part: str) -> dict:
    """The numbers of one MNIST part's runs: the mnist block (without `enabled`, `parts` and the
    runtime keys) with the part's overrides of MNIST_PART_KEYS; canonical."""
    over = {k: v for k, v in config["mnist"]["parts"][part].items() if k in MNIST_PART_KEYS}
    return canonical({**numbers(config, "mnist", drop=("enabled", "parts")), **over})


def without_runtime_keys(config: Mapping) -> dict:
    """The whole config without its runtime keys (what the results depend on)."""
    runtime = runtime_keys(config)
    return {
        k: numbers(config, k) if isinstance(v, Mapping) else v for k, v in config.items() if k not in runtime
    }


# ------------------------------------------------------------------ rules between keys ----


def fail(message: str) -> None:
    raise UserError(message)


def ordered(key: str, low: float, high: float, strict: bool = False) -> None:
    if low > high or (strict and low == high):
        word = "below" if strict else "at most"
        fail(f"Config key {key}: low ({low}) must be {word} high ({high}); swap or fix them.")


def unique(key: str, names: list[str]) -> None:
    if len(set(names)) != len(names):
        fail(f"Config key {key} repeats a name ({', '.join(names)}); give each entry its own name.")


def member(key: str, value, allowed, what: str) -> None:
    if value not in allowed:
        listed = ", ".join(map(str, allowed))
        fail(f"Config key {key} = {value!r} is not {what} ({listed}); choose one of them.")


def check_relations(config: Mapping) -> None:
    """Every rule between config keys that the schema cannot express; raises `UserError`."""
    from pipeline.studies import STUDIES  # the registry imports this module

    if config["studies"] is not None:
        for name in config["studies"]:
            member("studies", name, [s.name for s in STUDIES], "a registered study")
    for study in STUDIES:  # each study's own rules: pipeline/<name>/checks.py
        import_module(study.module("checks")).check(config)
