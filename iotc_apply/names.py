"""Names that come from the account, checked where they become anything else.

The account is untrusted input: a service that does not validate names, or anyone with write
access to it, can return a template code, firmware name, version or upload file name such as
`../../.bashrc`. Export turns those names into path segments and YAML; they pass here first.
A path segment must satisfy the same rule a manifest name does (read from the kinds'
schemas, so the rule lives in one place); a string written into a manifest has `${`
escaped, so an exported tree never reads a live name as a variable reference.
May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# an uploaded file's name: no schema names it; a letter or digit first (never `.` or `..`),
# then letters, digits and `_ . + -`
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}")


@functools.cache
def _rule(kind: str) -> tuple[re.Pattern[str], int]:
    """The manifest rule for a name of `kind`: its schema's pattern and maximum length."""
    if kind == "file":
        return FILE_NAME, 255
    schema_kind, path = {
        "template": ("template", ("properties", "metadata", "properties", "name")),
        "firmware": ("firmware", ("properties", "metadata", "properties", "name")),
        "device": ("device", ("properties", "metadata", "properties", "name")),
        "version": ("firmware", ("$defs", "upgrade", "properties", "version"))}[kind]
    node: Any = json.loads((SCHEMA_DIR / f"{schema_kind}.schema.json").read_text())
    for key in path:
        node = node[key]
    pattern = node["pattern"].removesuffix("(?!\\n)").removeprefix("^").removesuffix("$")
    return re.compile(pattern), int(node.get("maxLength", 255))


def valid(kind: str, name: object) -> bool:
    """Whether a live name of `kind` (template, firmware, version, device, file) follows
    the rule a manifest name of that kind follows; only such a name becomes a path."""
    if not isinstance(name, str):
        return False
    pattern, longest = _rule(kind)
    return len(name) <= longest and pattern.fullmatch(name) is not None


def escaped(value: Any) -> Any:
    """A value for an exported manifest: every `${` in its strings written `$${`, which the
    loader reads back as the literal text (never a variable reference)."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {k: escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escaped(v) for v in value]
    return value
