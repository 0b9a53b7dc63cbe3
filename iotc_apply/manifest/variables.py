"""Variables: `${var.NAME}` inside string values, declared by a `Variables` document.

Values come from `--var NAME=VALUE` (flags), `--var-file FILE.yaml` (later files win), the
environment (`IOTC_VAR_NAME`), then the declared default; flags beat files beat environment
beat defaults. Substitution runs after YAML parsing and before schema validation, on string
values only (never keys), so every position still points into the manifest, and a string
that is exactly one reference to an integer or boolean variable takes that type. No
expressions, no loops, no other access to the environment; `$${` writes a literal `${`;
`{index}` of a DeviceSet is left alone. Every mistake is a located one-line error.
A `pattern` comes from the same pull request as the value it checks, so it runs on RE2
(google-re2): matching is linear in the text whatever the pattern, where Python's `re`
backtracks (`(a|a)*b` took 24.5 s on 28 characters). RE2 has no backreferences or
lookaround; a pattern using them is a located error saying so.
May import: `diagnostics`, `model`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2

from ..diagnostics import Diagnostic, Position
from ..model import MASK
from .yamlsafe import Document, load_file

REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\})?")
NAME = re.compile(r"var\.([A-Za-z_][A-Za-z0-9_]*)")
# What substitution may add to one document: aliases copy a `${var}` wherever they point,
# so without a bound a 2 MB manifest became 4 GB (the loader bounds what aliases copy).
MAX_SUBSTITUTED_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    default: Any
    has_default: bool
    pattern: str | None
    sensitive: bool
    where: Position


@dataclass(frozen=True)
class Given:
    """Values from outside the manifests, strongest first."""

    flags: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Resolved:
    values: dict[str, Any] = field(default_factory=dict)
    sensitive: set[str] = field(default_factory=set)

    def recorded(self) -> dict[str, Any]:
        """What a plan may record: every value, sensitive ones masked."""
        return {k: MASK if k in self.sensitive else v for k, v in sorted(self.values.items())}

    def secrets(self) -> set[str]:
        return {str(self.values[k]) for k in self.sensitive if k in self.values}


def parse_flags(pairs: list[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs; ValueError naming the first one without `=`."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--var {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def declarations(docs: list[Document]) -> tuple[dict[str, Variable], list[Diagnostic]]:
    """The variables that schema-valid Variables documents declare."""
    out: dict[str, Variable] = {}
    diags: list[Diagnostic] = []
    for doc in docs:
        for name, spec in doc.value["spec"]["variables"].items():
            where = doc.where(("spec", "variables", name), key=True)
            if name in out:
                diags.append(Diagnostic.error(where, f"variable '{name}' is declared twice "
                                                     f"(first at {out[name].where})"))
                continue
            pattern = spec.get("pattern")
            if pattern is not None:
                problem = _pattern_problem(pattern)
                if problem:
                    diags.append(Diagnostic.error(doc.where(("spec", "variables", name,
                                                             "pattern")), problem))
                    continue
            variable = Variable(name, spec["type"], spec.get("default"), "default" in spec,
                                pattern, bool(spec.get("sensitive")), where)
            if variable.has_default:
                _, problem = _typed(variable, variable.default)
                if problem:
                    diags.append(Diagnostic.error(doc.where(("spec", "variables", name,
                                                             "default")),
                                                  f"default of '{name}': {problem}"))
                    continue
            out[name] = variable
    return out, diags


def _pattern_problem(pattern: str) -> str | None:
    if len(pattern) > 200:
        return "pattern: longer than 200 characters"
    try:
        _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return f"pattern: not a regular expression RE2 accepts ({reason}; RE2 has no " \
               "backreferences or lookaround)"
    return None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    """The pattern on RE2 (linear time), compiled once; its errors are not logged by RE2
    itself (the caller words them)."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def resolve(variables: dict[str, Variable], given: Given) -> tuple[Resolved, list[Diagnostic]]:
    """Each declared variable's value from the strongest source that has one."""
    diags: list[Diagnostic] = []
    from_files: dict[str, tuple[Any, Position]] = {}
    for name in given.files:
        values, problems = _var_file(name)
        diags += problems
        from_files.update(values)
    resolved = Resolved()
    for name in given.flags:
        if name not in variables:
            diags.append(Diagnostic.error(Position("--var"), f"'{name}' is not a declared "
                                                             f"variable{_known(variables)}"))
    for name, (_, where) in from_files.items():
        if name not in variables:
            diags.append(Diagnostic.error(where, f"'{name}' is not a declared variable"
                                                 f"{_known(variables)}"))
    for name, variable in sorted(variables.items()):
        source: tuple[Any, Position] | None = None
        if name in given.flags:
            source = given.flags[name], Position(f"--var {name}")
        elif name in from_files:
            source = from_files[name]
        elif f"IOTC_VAR_{name}" in given.environ:
            source = given.environ[f"IOTC_VAR_{name}"], Position(f"IOTC_VAR_{name}")
        elif variable.has_default:
            source = variable.default, variable.where
        if source is None:
            diags.append(Diagnostic.error(variable.where, f"variable '{name}' has no value: "
                                          f"pass --var {name}=VALUE, set IOTC_VAR_{name}, or "
                                          "give it a default"))
            continue
        value, problem = _typed(variable, source[0])
        if problem:
            diags.append(Diagnostic.error(source[1], f"variable '{name}': {problem}"))
            continue
        resolved.values[name] = value
        if variable.sensitive:
            resolved.sensitive.add(name)
    return resolved, diags


def _known(variables: dict[str, Variable]) -> str:
    return f" (declared: {', '.join(sorted(variables))})" if variables else \
        " (no Variables document declares any)"


def _var_file(name: str) -> tuple[dict[str, tuple[Any, Position]],
                                               list[Diagnostic]]:
    path = Path(name)
    docs, diags = load_file(path, name)
    if diags:
        return {}, diags
    if not docs:
        return {}, []
    doc = docs[0]
    if len(docs) > 1 or not isinstance(doc.value, dict):
        return {}, [Diagnostic.error(Position(name, 1, 1), "a var file is one mapping of "
                                                          "NAME: VALUE")]
    out = {}
    for key, value in doc.value.items():
        if isinstance(value, (dict, list)) or value is None:
            diags.append(Diagnostic.error(doc.where((key,)), f"'{key}': a variable's value "
                                                            "is a string, number or boolean"))
            continue
        out[key] = (value, doc.where((key,)))
    return out, diags


def _typed(variable: Variable, value: Any) -> tuple[Any, str | None]:
    """The value in the variable's type, or why it is not one (a sensitive value is never
    shown, whatever is wrong with it)."""
    shown = MASK if variable.sensitive else _show(value)
    if variable.type == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or (
                isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()))):
            return None, f"{shown} is not an integer"
        value = int(value)
        if abs(value) >= 10 ** 18:
            return None, f"{shown} has more than 18 digits"
    elif variable.type == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            return None, f"{shown} is not true or false"
    else:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None, f"{shown} is not a string"
        value = str(value)
    if variable.pattern is not None and \
            _compiled(variable.pattern).fullmatch(str(value)) is None:
        return None, f"{shown} does not match the pattern {variable.pattern!r}"
    return value, None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def substitute(doc: Document, values: dict[str, Any],
               variables: dict[str, Variable]) -> tuple[list[Diagnostic], bool]:
    """Replace every reference in the document's string values, in place. Returns the
    mistakes found here, and whether every reference got a value (when one did not, the
    document is not checked further: its variable's own error is the one to fix)."""
    if not doc.references:
        return [], True  # nothing to replace: not walked (most documents of a large fleet)
    diags: list[Diagnostic] = []
    unresolved: list[str] = []
    budget = [MAX_SUBSTITUTED_BYTES]
    try:
        doc.value = _walk(doc, doc.value, (), values, variables, diags, unresolved, budget)
    except _TooLarge as exc:
        return [Diagnostic.error(doc.where(exc.path), "variables expand this document by "
                                 f"more than {MAX_SUBSTITUTED_BYTES:,} bytes (a reference "
                                 "repeated by YAML aliases?)")], False
    return diags, not diags and not unresolved


class _TooLarge(Exception):
    def __init__(self, path: tuple[Any, ...]) -> None:
        super().__init__()
        self.path = path


def _walk(doc: Document, value: Any, path: tuple[Any, ...], values: dict[str, Any],
          variables: dict[str, Variable], diags: list[Diagnostic],
          unresolved: list[str], budget: list[int]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(doc, v, (*path, k), values, variables, diags, unresolved, budget)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(doc, v, (*path, i), values, variables, diags, unresolved, budget)
                for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        result = _string(doc, value, path, values, variables, diags, unresolved)
        if isinstance(result, str):
            budget[0] -= len(result) - len(value)
            if budget[0] < 0:
                raise _TooLarge(path)
        return result
    return value


def _string(doc: Document, text: str, path: tuple[Any, ...], values: dict[str, Any],
            variables: dict[str, Variable], diags: list[Diagnostic],
            unresolved: list[str]) -> Any:
    parts: list[Any] = []
    last = 0
    for match in REFERENCE.finditer(text):
        parts.append(text[last:match.start()])
        last = match.end()
        if match.group(0) == "$${":
            parts.append("${")
            continue
        value = _reference(doc, match, path, values, variables, diags)
        if value is None:
            unresolved.append(text)
            return text
        parts.append(value)
    parts.append(text[last:])
    real = [p for p in parts if p != ""]
    if len(real) == 1 and not isinstance(real[0], str):
        return real[0]  # `${var.count}` alone keeps the variable's type
    return "".join(str(p).lower() if isinstance(p, bool) else str(p) for p in parts)


def _reference(doc: Document, match: re.Match[str], path: tuple[Any, ...],
               values: dict[str, Any], variables: dict[str, Variable],
               diags: list[Diagnostic]) -> Any:
    where = doc.where(path)
    body = match.group("body")
    if match.group("close") is None:
        diags.append(Diagnostic.error(where, f"'${{{body}' is not closed: write ${{var.NAME}} "
                                             "(or $${ for a literal ${)"))
        return None
    found = NAME.fullmatch(body.strip())
    if found is None:
        diags.append(Diagnostic.error(where, f"'${{{body}}}': only ${{var.NAME}} is allowed "
                                             "here (no expressions; $${ writes a literal ${)"))
        return None
    name = found.group(1)
    if name not in variables:
        diags.append(Diagnostic.error(where, f"variable '{name}' is not declared"
                                             f"{_known(variables)}"))
        return None
    if variables[name].sensitive and _names_an_object(path):
        diags.append(Diagnostic.error(where, f"sensitive variable '{name}' cannot be part of "
                                             "an object's name: names are addresses, shown "
                                             "in every plan and used as key store folders "
                                             "(use it in a displayName or description)"))
        return None
    if name not in values:
        return None  # its missing or bad value is reported where it was declared or given
    return values[name]


def _names_an_object(path: tuple[Any, ...]) -> bool:
    """Whether a value at `path` becomes part of an address: `metadata.name`, a DeviceSet's
    `uniqueId`, an upgrade's `version`."""
    return path[:2] == ("metadata", "name") or path == ("spec", "uniqueId") or (
        len(path) == 4 and path[:2] == ("spec", "upgrades") and path[3] == "version")
