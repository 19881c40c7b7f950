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


def _fail(message: str) -> None:
    raise UserError(message)


def _ordered(key: str, low: float, high: float, strict: bool = False) -> None:
    if low > high or (strict and low == high):
        word = "below" if strict else "at most"
        _fail(f"Config key {key}: low ({low}) must be {word} high ({high}); swap or fix them.")


def _unique(key: str, names: list[str]) -> None:
    if len(set(names)) != len(names):
        _fail(f"Config key {key} repeats a name ({', '.join(names)}); give each entry its own name.")


def _member(key: str, value, allowed, what: str) -> None:
    if value not in allowed:
        listed = ", ".join(map(str, allowed))
        _fail(f"Config key {key} = {value!r} is not {what} ({listed}); choose one of them.")


def check_stability(config: Mapping) -> None:
    st = config["stability"]
    sc = st["scalar"]
    if sc["delta_num"] > 0:
        _ordered("stability.scalar.delta_min/delta_max", sc["delta_min"], sc["delta_max"])
    if sc["delta_num"] == 0 and not sc["delta_factors"]:
        _fail(
            "Config keys stability.scalar.delta_num = 0 and delta_factors = [] leave no step size; set one."
        )
    _ordered("stability.depth.eig_low/eig_high", st["depth"]["eig_low"], st["depth"]["eig_high"])
    svd = st["single_vs_double"]
    _unique("stability.single_vs_double.regimes", [r["name"] for r in svd["regimes"]])
    for reg in svd["regimes"]:
        _ordered(f"stability.single_vs_double.regimes ({reg['name']})", reg["low"], reg["high"])
    if not svd["deltas"] and not svd["delta_rel"]:
        _fail("Config keys stability.single_vs_double.deltas and delta_rel are both empty; set a step.")
    typical = config["figures"]["stability"]["typical"]
    if st["enabled"] and svd["enabled"]:
        key = "figures.stability.typical"
        _member(f"{key}.regime", typical["regime"], [r["name"] for r in svd["regimes"]], "a regime run")
        _member(f"{key}.depth", typical["depth"], svd["depths"], "a depth of stability.single_vs_double")
        _member(f"{key}.delta_rel", typical["delta_rel"], svd["delta_rel"], "a relative step run")
        _member(f"{key}.seed", typical["seed"], list(range(svd["seeds"])), "a seed run")


def check_bias1d(config: Mapping) -> None:
    b = config["bias1d"]
    _ordered("bias1d.data", b["data"]["low"], b["data"]["high"], strict=True)
    _unique("bias1d.intervals", [iv["name"] for iv in b["intervals"]])
    for iv in b["intervals"]:
        _ordered(f"bias1d.intervals ({iv['name']})", iv["low"], iv["high"], strict=True)
    _ordered("bias1d.weight_init", b["weight_init"]["low"], b["weight_init"]["high"], strict=True)
    kx, ky = b["piecewise"]["knots_x"], b["piecewise"]["knots_y"]
    if len(kx) != len(ky):
        _fail(
            f"Config keys bias1d.piecewise.knots_x ({len(kx)} values) and knots_y ({len(ky)} values) "
            "must have the same length."
        )
    if any(x1 <= x0 for x0, x1 in zip(kx, kx[1:], strict=False)):
        _fail(f"Config key bias1d.piecewise.knots_x must be strictly increasing (got {kx}).")
    fig = config["figures"]["bias1d"]
    names = [iv["name"] for iv in b["intervals"]]
    if b["enabled"]:
        seeds = [b["seed_offset"] + k for k in range(b["seeds"])]
        _member("figures.bias1d.seed", fig["seed"], seeds, "a seed of the bias1d runs")
        if fig["depth"] is not None:
            _member("figures.bias1d.depth", fig["depth"], b["depths"], "a depth of bias1d.depths")
        for name in fig["intervals"]:
            _member("figures.bias1d.intervals", name, names, "an interval of bias1d.intervals")
        _member("figures.bias1d.momentum", fig["momentum"], b["optimizer"]["momenta"], "a momentum run")
    extra = b["primary_seeds"]
    if b["enabled"]:
        for key, values, what in (
            ("targets", b["targets"], "a target of bias1d.targets"),
            ("depths", b["depths"], "a depth of bias1d.depths"),
            ("momenta", b["optimizer"]["momenta"], "a momentum of bias1d.optimizer.momenta"),
            ("intervals", names, "an interval of bias1d.intervals"),
        ):
            for value in extra[key]:
                _member(f"bias1d.primary_seeds.{key}", value, values, what)
        if extra["seeds"] < b["seeds"]:
            _fail(
                f"Config key bias1d.primary_seeds.seeds = {extra['seeds']} is below bias1d.seeds = "
                f"{b['seeds']}; it counts the seeds of those runs in all, so give at least that many."
            )
    up = b["updates"]
    if b["enabled"] and up["enabled"]:
        for depth in up["depths"]:
            _member("bias1d.updates.depths", depth, b["depths"], "a depth of bias1d.depths")
        for target in up["targets"]:
            _member("bias1d.updates.targets", target, b["targets"], "a target of bias1d.targets")
        for name in up["intervals"]:
            _member("bias1d.updates.intervals", name, names, "an interval of bias1d.intervals")
        _member(
            "figures.bias1d.updates_interval",
            fig["updates_interval"],
            up["intervals"],
            "an interval of bias1d.updates.intervals",
        )


def check_mnist(config: Mapping) -> None:
    m = config["mnist"]
    conv = m["conv"]
    side = 28 + 2 * conv["padding"] - conv["size"] + 1
    if side < conv["pool"]:
        _fail(
            f"Config key mnist.conv: the convolution (size {conv['size']}, padding {conv['padding']}) "
            f"leaves {side}x{side} pixels, fewer than one max-pool window of {conv['pool']}; "
            "lower mnist.conv.pool or size."
        )
    _ordered("mnist.init.bias_low/bias_high", m["init"]["bias_low"], m["init"]["bias_high"])
    parts = mnist_parts(config)
    if m["enabled"] and not parts:
        _fail(
            "Config key mnist.parts sets every part to null, so nothing is run; give a part or set "
            "mnist.enabled to false."
        )
    drift_epoch = config["figures"]["mnist"]["drift_epoch"]
    for name, part in parts.items():
        epochs = part.get("epochs", m["epochs"])
        if drift_epoch > epochs:
            _fail(
                f"Config key figures.mnist.drift_epoch = {drift_epoch} is after the last epoch of "
                f"the MNIST part {name} ({epochs})."
            )


def check_stepsize(config: Mapping) -> None:
    s = config["stepsize"]
    if "fixed" not in s["rules"]:
        _fail(
            "Config key stepsize.rules must include fixed: every other rule is compared with the "
            "best fixed step."
        )
    if any(b <= a for a, b in zip(s["factors"], s["factors"][1:], strict=False)):
        _fail(f"Config key stepsize.factors must be strictly increasing (got {s['factors']}).")
    families = s["matrix"]["families"]
    _unique("stepsize.matrix.families", [f["name"] for f in families])
    for fam in families:
        _ordered(f"stepsize.matrix.families ({fam['name']})", fam["low"], fam["high"])
    if s["enabled"]:
        ref = config["figures"]["stepsize"]["reference_factor"]
        _member("figures.stepsize.reference_factor", ref, s["factors"], "a factor of stepsize.factors")


def check_edge(config: Mapping) -> None:
    e = config["edge"]
    sc, mp = e["scalar"], e["maps"]
    if e["tol_window"] > sc["iterations"] + 1:
        _fail(
            f"Config key edge.tol_window = {e['tol_window']} is longer than a scalar run "
            f"(edge.scalar.iterations + 1 = {sc['iterations'] + 1}); shorten it."
        )
    if e["matrix"]["every"] > e["matrix"]["iterations"]:
        _fail("Config key edge.matrix.every must be at most edge.matrix.iterations.")
    _ordered("edge.matrix.eig_low/eig_high", e["matrix"]["eig_low"], e["matrix"]["eig_high"])
    sizes = sorted(mp["box_sizes"])
    if any(sizes[-1] % k for k in sizes):
        _fail(f"Config key edge.maps.box_sizes: every size must divide the largest ({sizes}).")
    if sizes[-1] > mp["resolution"]:
        _fail(
            f"Config key edge.maps.box_sizes: the largest box ({sizes[-1]}) exceeds the map's "
            f"resolution ({mp['resolution']})."
        )
    for key in ("delta_factor", "a"):
        low, high = mp["delta_a"][key]
        _ordered(f"edge.maps.delta_a.{key}", low, high, strict=True)
    th = config["report"]["claims"]
    if e["enabled"] and mp["enabled"]:
        run = [m for m in ("delta_a", "w1_w2") if mp[m]["enabled"] and mp[m]["depths"]]
        _member("report.claims.claim11_map", th["claim11_map"], run, "a map that is run")
    typical = config["figures"]["edge"]["typical"]
    if e["enabled"] and sc["enabled"] and sc["depths"]:
        key = "figures.edge.typical"
        _member(f"{key}.depth", typical["depth"], sc["depths"], "a depth of edge.scalar.depths")
        _member(f"{key}.init", typical["init"], sc["inits"], "a start of edge.scalar.inits")
        _member(f"{key}.target", typical["target"], sc["targets"], "a target of edge.scalar.targets")
        _member(
            f"{key}.data_scale",
            typical["data_scale"],
            sc["data_scales"],
            "a scale of edge.scalar.data_scales",
        )
        seeds = list(range(min(sc["seeds"], sc["trace_seeds"])))
        _member(
            f"{key}.seed", typical["seed"], seeds, "a seed whose traces are kept (edge.scalar.trace_seeds)"
        )


def check_claims(config: Mapping) -> None:
    """The primary settings of the claims must be settings that are run."""
    th = config["report"]["claims"]
    st = config["stability"]
    if st["enabled"] and st["depth"]["enabled"]:
        _member(
            "report.claims.claim3_delta",
            th["claim3_delta"],
            st["depth"]["deltas"],
            "a step of stability.depth.deltas",
        )
    if st["enabled"] and st["single_vs_double"]["enabled"]:
        regimes = [r["name"] for r in st["single_vs_double"]["regimes"]]
        for key in ("claim4_speed_regime", "claim4_stall_regime"):
            _member(f"report.claims.{key}", th[key], regimes, "a regime of stability.single_vs_double")
    b = config["bias1d"]
    if b["enabled"]:
        its = b["optimizer"]["iterations"]
        budgets = sorted({s for s in b["snapshots"] if s <= its} | {its})
        _member(
            "report.claims.bias1d_target", th["bias1d_target"], b["targets"], "a target of bias1d.targets"
        )
        _member("report.claims.bias1d_depth", th["bias1d_depth"], b["depths"], "a depth of bias1d.depths")
        _member(
            "report.claims.bias1d_momentum",
            th["bias1d_momentum"],
            b["optimizer"]["momenta"],
            "a momentum run",
        )
        _member("report.claims.bias1d_iterations", th["bias1d_iterations"], budgets, "a measured iteration")
        widest = max(b["intervals"], key=lambda iv: iv["high"] - iv["low"])["name"]
        narrow = [iv["name"] for iv in b["intervals"] if iv["name"] != widest]
        _member(
            "report.claims.bias1d_narrow", th["bias1d_narrow"], narrow, "an interval narrower than the widest"
        )
        up = b["updates"]
        if up["enabled"]:
            what = "a value of bias1d.updates.{} (claim 9 is judged there)"
            _member("report.claims.claim9_depth", th["claim9_depth"], up["depths"], what.format("depths"))
            for key, values in (("target", "targets"), ("momentum", "momenta"), ("narrow", "intervals")):
                _member(f"report.claims.bias1d_{key}", th[f"bias1d_{key}"], up[values], what.format(values))


def check_mnist_claims(config: Mapping) -> None:
    """Claim 7 is judged on one MNIST part, which must run the model (without its baseline,
    claim 7 b is not run)."""
    parts = mnist_parts(config)
    if not parts:
        return
    th = config["report"]["claims"]
    _member("report.claims.mnist_part", th["mnist_part"], list(parts), "an MNIST part that is run")
    part = th["mnist_part"]
    what = f"a variant of the MNIST part {part}"
    _member("report.claims.mnist_variant", th["mnist_variant"], parts[part]["variants"], what)


def check_relations(config: Mapping) -> None:
    """Every rule between config keys that the schema cannot express; raises `UserError`."""
    from pipeline.studies import STUDIES  # the registry imports this module

    if config["studies"] is not None:
        for name in config["studies"]:
            _member("studies", name, [s.name for s in STUDIES], "a registered study")
    check_stability(config)
    check_bias1d(config)
    check_mnist(config)
    check_stepsize(config)
    check_edge(config)
    check_claims(config)
    check_mnist_claims(config)
