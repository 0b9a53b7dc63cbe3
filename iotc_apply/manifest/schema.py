"""JSON Schema validation of manifest documents, with errors a person can act on.

The schemas (draft 2020-12, `iotc_apply/schemas/`, also `schemas/` at the top of the repo for
editors) are the single definition of each kind's fields. Every document is first checked by
a validator fastjsonschema compiled to Python (about 20 times faster: a valid fleet of 10,000
documents never reaches jsonschema); only a document it rejects is checked again by
jsonschema, whose errors are complete and carry paths. jsonschema's error paths are mapped
back to the YAML node they are about, and its messages are rewritten into one short sentence
naming the field (`spec.upgrades[0].version`) and, where it helps, the closest valid word.
May import: `diagnostics`, `validators`.
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

from .. import validators
from ..diagnostics import Diagnostic
from .yamlsafe import Document

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
KIND_SCHEMAS = {"Template": "template", "Device": "device", "DeviceSet": "deviceset",
                "Firmware": "firmware", "Project": "project", "Variables": "variables",
                "Rollout": "rollout"}


@cache
def schema(name: str) -> dict[str, Any]:
    text = (SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def validator(kind: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # only a rejected document needs it

    return Draft202012Validator(schema(KIND_SCHEMAS[kind]))


@cache
def compiled(kind: str, prefix: tuple[Any, ...] = ()) -> Any:
    """The kind's schema (or its part at `prefix`) compiled to a Python function (raises on
    the first error only).

    Compiled from a copy without `$id`: fastjsonschema would resolve `#/$defs/...` against
    that URL and fetch it over the network, and it writes into the schema it is given.
    """
    whole = schema(KIND_SCHEMAS[kind]) if not prefix else _subschema(kind, prefix)
    own = {k: v for k, v in copy.deepcopy(whole).items() if k != "$id"}
    return validators.compiled(own)


def is_valid(kind: str, instance: Any, prefix: tuple[Any, ...] = ()) -> bool:
    """The fast yes; only a no pays for jsonschema (imported then), which says why."""
    try:
        compiled(kind, prefix)(instance)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def check(doc: Document, kind: str, value: Any = None, prefix: tuple[Any, ...] = (),
          note: str = "") -> list[Diagnostic]:
    """Schema errors of a document (or of `value` placed at `prefix` inside it)."""
    instance = doc.value if value is None else value
    if is_valid(kind, instance, prefix if value is not None else ()):
        return []
    v = validator(kind)
    if value is not None:
        v = type(v)(_subschema(kind, prefix))
    out = []
    for err in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        path = (*prefix, *err.absolute_path)
        message, at = _explain(err, path)
        where = doc.where(at, key=at != path) if value is None else doc.where(prefix)
        out.append(Diagnostic.error(where, note + message))
    return out


def _subschema(kind: str, prefix: tuple[Any, ...]) -> dict[str, Any]:
    node: dict[str, Any] = schema(KIND_SCHEMAS[kind])
    for part in prefix:
        node = node["properties"][part]
    return {**node, "$defs": schema(KIND_SCHEMAS[kind]).get("$defs", {})}


def field_name(path: tuple[Any, ...] | list[Any]) -> str:
    """`spec.upgrades[0].version` for ('spec', 'upgrades', 0, 'version')."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def _explain(err: ValidationError, path: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """A one-sentence message, and the path of the node to point at (an unknown field's
    key rather than its parent)."""
    name = field_name(path)
    kind, schema_ = err.validator, err.schema if isinstance(err.schema, dict) else {}
    if kind == "required":
        missing = str(err.message).split("'")[1] if "'" in err.message else "?"
        return f"{name}: missing required field '{missing}'", path
    if kind == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(schema_.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        hint = _closest(extra[0], allowed) if extra else ""
        if not extra:
            return f"{name}: unknown field", path
        return f"{field_name((*path, extra[0]))}: unknown field '{extra[0]}'{hint}", \
            (*path, extra[0])
    if kind == "pattern" or (kind == "oneOf" and "x-message" in schema_):
        return f"{name}: {_show(err.instance)} {schema_.get('x-message', 'is not valid')}", path
    if kind in ("minProperties", "maxProperties") and "x-message" in schema_:
        return f"{name}: {schema_['x-message']}", path
    if kind in ("type", "const", "enum"):
        return _explain_value(err, name, schema_), path
    if kind == "minItems":
        return f"{name}: must have at least {err.validator_value} item(s)", path
    if kind in ("maxLength", "minLength", "minimum", "maximum", "uniqueItems"):
        return f"{name}: {_show(err.instance)} {_limit(kind, err.validator_value)}", path
    return f"{name}: {err.message}", path


def _explain_value(err: ValidationError, name: str, schema_: dict[str, Any]) -> str:
    if err.validator == "type":
        wanted = err.validator_value
        hint = " (quote it)" if wanted == "string" and isinstance(
            err.instance, (int, float, bool)) else ""
        return f"{name}: expected {_article(wanted)}, got {_show(err.instance)}{hint}"
    if err.validator == "const":
        return f"{name}: must be {err.validator_value!r}, got {_show(err.instance)}"
    options = [str(o) for o in err.validator_value]
    if isinstance(err.instance, (int, float)) and not isinstance(err.instance, bool) and \
            str(err.instance) in options and err.instance not in err.validator_value:
        # `messageVersion: 2.1` is the number 2.1 to YAML; the schema wants the text
        return f"{name}: {_show(err.instance)} is a number; quote it: '{err.instance}'"
    hint = _closest(str(err.instance), options)
    return f"{name}: {_show(err.instance)} is not one of {', '.join(options)}{hint}"


def _limit(kind: str, value: Any) -> str:
    return {"maxLength": f"is longer than {value} characters",
            "minLength": f"is shorter than {value} character(s)",
            "minimum": f"is less than {value}", "maximum": f"is more than {value}",
            "uniqueItems": "has repeated items"}[kind]


def _article(wanted: Any) -> str:
    names = {"string": "a string", "integer": "a whole number", "boolean": "true or false",
             "object": "a mapping", "array": "a list", "number": "a number"}
    return names.get(str(wanted), str(wanted))


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _closest(word: str, options: list[str]) -> str:
    lowered = {o.lower(): o for o in options}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[match[0]]}'?)" if match else ""
