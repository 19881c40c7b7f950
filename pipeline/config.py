"""Config validation against the workflow's JSON Schema, with one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

from pipeline.errors import UserError


def _with_defaults(cls):
    """A validator class that fills in each property's `default` before validating it."""
    check_properties = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub:
                    instance.setdefault(key, _copy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(cls, {"properties": properties})


def _copy(value):
    import copy

    return copy.deepcopy(value)


_Validator = _with_defaults(Draft202012Validator)


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate(config: dict, schema_path: str | Path) -> dict:
    """Validate `config` in place (filling defaults) and return it.

    Raises `UserError` with one sentence naming the offending key, its value and the rule
    it breaks (plus the key's description), for the first error found.
    """
    schema = load_schema(schema_path)
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise UserError(describe(errors[0]))
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
    hint = f" ({desc.strip().rstrip('.')})" if desc else ""
    return f"Config key {key} = {error.instance!r} is invalid: {error.message}{hint}."
