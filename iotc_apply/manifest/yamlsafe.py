"""Untrusted YAML in, plain values with source positions out.

Manifests arrive in pull requests, so loading them must never execute anything nor blow up:
the text is only *composed* into nodes (by libyaml's safe loader when present), and values
are built here, from nodes, under rules: string keys only, no duplicate keys, no merge keys,
no tags beyond the YAML core schema, bounded depth, and a bound on how far aliases may
expand (an alias bomb is refused instead of filling memory). Every value's position is kept
by its path, so later checks (jsonschema, references) can point at the exact node.
Imports `diagnostics` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ..diagnostics import Diagnostic, Position

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp",
}
STR = "tag:yaml.org,2002:str"
SEQ = "tag:yaml.org,2002:seq"
MAP = "tag:yaml.org,2002:map"
Path_ = tuple[Any, ...]


@dataclass
class Document:
    """One YAML document: its value and where each part of it came from."""

    value: Any
    file: str
    index: int
    positions: dict[Path_, Position] = field(default_factory=dict)
    key_positions: dict[Path_, Position] = field(default_factory=dict)

    def where(self, path: Path_ | list[Any], key: bool = False) -> Position:
        """The position of the node at `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        table = self.key_positions if key else self.positions
        while path not in table and path:
            if key and path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return table.get(path) or self.positions.get(path) or Position(self.file, 1, 1)


class _Refused(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def load_file(path: Path, shown: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document in a file; problems as diagnostics, never exceptions."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return [], [Diagnostic.error(Position(shown), f"file is {size} bytes; manifests "
                                         f"are limited to {MAX_FILE_BYTES} bytes")]
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return [], [Diagnostic.error(Position(shown), "file is not UTF-8 text")]
    except OSError as exc:
        return [], [Diagnostic.error(Position(shown), f"cannot read: {exc.strerror}")]
    return load_text(text, shown)


def load_text(text: str, shown: str) -> tuple[list[Document], list[Diagnostic]]:
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    try:
        for index, node in enumerate(yaml.compose_all(text, Loader=Loader)):
            if node is None:
                continue
            doc = Document(None, shown, index)
            try:
                doc.value = _Builder(doc).build(node)
            except _Refused as refused:
                diags.append(Diagnostic.error(_pos(shown, refused.node), refused.message))
                continue
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(shown, mark.line + 1, mark.column + 1) if mark else Position(shown)
        problem = exc.problem or exc.context or "invalid YAML"
        diags.append(Diagnostic.error(where, f"invalid YAML: {problem}"))
    except yaml.YAMLError as exc:
        diags.append(Diagnostic.error(Position(shown), f"invalid YAML: {exc}"))
    return docs, diags


def _pos(shown: str, node: yaml.Node) -> Position:
    return Position(shown, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Builds values from nodes, counting work so aliases cannot multiply it unbounded."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.constructor = SafeConstructor()
        self.seen: set[int] = set()
        self.built = 0
        self.stack: set[int] = set()

    def build(self, node: yaml.Node, path: Path_ = (), depth: int = 0) -> Any:
        self.built += 1
        self.seen.add(id(node))
        if self.built > 4 * len(self.seen) + 10_000:
            raise _Refused(node, "YAML aliases expand too far (an alias bomb?)")
        if depth > MAX_DEPTH:
            raise _Refused(node, f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in self.stack:
            raise _Refused(node, "a YAML alias refers to itself")
        self.doc.positions[path] = _pos(self.doc.file, node)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if node.tag not in (SEQ, MAP):
            raise _Refused(node, f"unsupported YAML tag {node.tag!r}")
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*path, i), depth + 1)
                        for i, child in enumerate(node.value)]
            return self._mapping(node, path, depth)
        finally:
            self.stack.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in SCALAR_TAGS:
            raise _Refused(node, f"unsupported YAML tag {node.tag!r}")
        if node.tag in (STR, "tag:yaml.org,2002:timestamp"):
            return str(node.value)
        return self.constructor.yaml_constructors[node.tag](self.constructor, node)

    def _mapping(self, node: yaml.Node, path: Path_, depth: int) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise _Refused(node, "unsupported YAML node")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(key_node, "merge keys (<<) are not supported; write the fields")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != STR:
                raise _Refused(key_node, "mapping keys must be strings (quote it)")
            key = str(key_node.value)
            if key in out:
                raise _Refused(key_node, f"duplicate key {key!r}")
            self.doc.key_positions[(*path, key)] = _pos(self.doc.file, key_node)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        return out
