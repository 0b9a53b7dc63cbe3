"""Untrusted YAML in, plain values with source positions out.

Manifests arrive in pull requests, so loading them must never execute anything nor blow up:
the text is only *parsed* into events (by libyaml's safe loader when present), and values
are built here, from events, under rules: string keys only, no duplicate keys, no merge keys,
no tags beyond the YAML core schema, bounded depth (checked as events arrive, so no depth
crashes anything), and a bound on how far aliases may expand (an alias bomb is refused
instead of filling memory). Every value's position is kept
by its path, so later checks (jsonschema, references) can point at the exact node.
May import: `diagnostics`.
"""

from __future__ import annotations

import copy
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ..diagnostics import Diagnostic, Position

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 250_000  # about 12,000 Device documents; keeps `validate` of any file under 2 s
MAX_DEPTH = 64
# Aliases copy their anchor's value: bounded by the bytes the copies hold (text of every
# scalar copied), not only by nodes, so one aliased 1 MB scalar cannot become gigabytes.
MAX_ALIAS_BYTES = 2 * MAX_FILE_BYTES
SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp",
}
STR = "tag:yaml.org,2002:str"
SEQ = "tag:yaml.org,2002:seq"
MAP = "tag:yaml.org,2002:map"
MERGE = "tag:yaml.org,2002:merge"
INT = "tag:yaml.org,2002:int"
Path_ = tuple[Any, ...]


@dataclass
class Document:
    """One YAML document: its value and where each part of it came from."""

    value: Any
    file: str
    index: int
    # (line, column), 1-based; a Position is made only when one is asked for (`where`)
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    # whether any string in it may hold a `${...}` reference (the builder knows; anyone
    # else's document is walked)
    references: bool = True

    def where(self, path: Path_ | list[Any], key: bool = False) -> Position:
        """The position of the node at `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        table = self.key_positions if key else self.positions
        while path not in table and path:
            if key and path in self.positions:
                return Position(self.file, *self.positions[path])
            path = path[:-1]
        found = table.get(path) or self.positions.get(path) or (1, 1)
        return Position(self.file, *found)


class _Refused(Exception):
    def __init__(self, event: yaml.Event, message: str) -> None:
        super().__init__(message)
        self.event = event
        self.message = message


def load_file(path: Path, shown: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document in a file; problems as diagnostics, never exceptions."""
    try:
        problem = size_problem(path)
        if problem:
            return [], [Diagnostic.error(Position(shown), problem)]
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return [], [Diagnostic.error(Position(shown), "file is not UTF-8 text")]
    except OSError as exc:
        return [], [Diagnostic.error(Position(shown), f"cannot read: {exc.strerror}")]
    return load_text(text, shown)


def size_problem(path: Path) -> str | None:
    """Why a file must not be read whole (too large, or not a regular file: a FIFO would
    hang the read, a device never end it); None when it may. Raises OSError."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_FILE_BYTES:
        return f"file is {info.st_size} bytes; manifests are limited to {MAX_FILE_BYTES} bytes"
    return None


def load_text(text: str, shown: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document in `text`; the same documents and diagnostics whatever libyaml does.

    libyaml (bundled with PyYAML 6.0.4 and later) stops nesting with its own scanner limit,
    and its scanner runs ahead of the parser, so that limit can fire before the builder
    sees level MAX_DEPTH + 1. Its refusal is then not reported: the text is read again by
    PyYAML's pure-Python parser, which has no limit of its own and is lazy, so the builder
    refuses at the same line and column in its own words, and the second read costs only
    the levels before the refusal.
    """
    docs, diags, limited = _load_text(text, shown, Loader)
    if limited and Loader is not yaml.SafeLoader:
        docs, diags, _ = _load_text(text, shown, yaml.SafeLoader)
    return docs, diags


def _load_text(text: str, shown: str,
               loader: type) -> tuple[list[Document], list[Diagnostic], bool]:
    """Every document in `text`, built from the parser's event stream; the flag says the
    parser stopped on a nesting limit of its own.

    Events, not libyaml's composer: the composer recurses once per nesting level and a
    100 KB document nested 50,000 deep overflows the C stack (SIGSEGV), while the event
    parser is a state machine. Building here is a loop with an explicit stack, so depth is
    checked as the events arrive and no input can crash the process; it is also about three
    times faster than composing, because plain scalars are resolved once per distinct text.
    """
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    builder: _Builder | None = None
    index = count = 0
    parser = loader(text)  # events pulled one call at a time: no generator in between
    try:
        while (event := parser.get_event()) is not None:
            count += 1
            if count > MAX_NODES + 1:
                diags.append(Diagnostic.error(_pos(shown, event), f"more than {MAX_NODES:,} "
                             "YAML nodes in one file; split it into several files (or "
                             "describe a numbered run of devices as one DeviceSet)"))
                return docs, diags, False
            kind = type(event)
            if builder is not None and kind is not _DOCUMENT_END:
                builder.feed(event)
                if builder.too_deep:  # stop reading: libyaml's scanner slows with depth
                    diags.append(builder.refused)  # type: ignore[arg-type]
                    return docs, diags, False
            elif kind is _DOCUMENT_START:
                builder = _Builder(Document(None, shown, index))
                index += 1
            elif kind is _DOCUMENT_END and builder is not None:
                if builder.refused is not None:
                    diags.append(builder.refused)
                else:
                    docs.append(builder.doc)
                builder = None
    except yaml.MarkedYAMLError as exc:
        if _nesting_limit(exc.problem or exc.context):
            return docs, diags, True
        diags.append(_syntax_error(exc, shown, text))
    except yaml.YAMLError as exc:
        if _nesting_limit(str(exc)):
            return docs, diags, True
        diags.append(Diagnostic.error(Position(shown), f"invalid YAML: {exc}"))
    finally:
        parser.dispose()
    return docs, diags, False


def _nesting_limit(problem: str | None) -> bool:
    """Whether a parser error is a nesting limit of the parser's own (libyaml's wording,
    'exceeded maximum nesting depth', or any future one naming depth or nesting)."""
    words = (problem or "").lower()
    return "nesting" in words or "depth" in words


def _syntax_error(exc: yaml.MarkedYAMLError, shown: str, text: str) -> Diagnostic:
    """PyYAML's complaint, at the line where the problem starts, with a hint for the three
    mistakes people make: a tab, an indentation step, an unclosed quote."""
    problem = exc.problem or exc.context or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    hint = ""
    if exc.context == "while scanning a quoted scalar" and exc.context_mark is not None:
        mark = exc.context_mark  # where the quote opened, not where the file ended
        problem, hint = "a quoted string is not closed", "add the closing quote"
    elif mark is not None and "\t" in _line(text, mark.line)[:mark.column + 1]:
        hint = "YAML indents with spaces; replace the tab"
    elif problem in ("did not find expected key", "did not find expected '-' indicator",
                     "mapping values are not allowed in this context",
                     "expected <block end>, but found '<block mapping start>'"):
        hint = "indent this line like the lines above it at the same level, or quote a " \
               "value that contains ': '"
    where = Position(shown, mark.line + 1, mark.column + 1) if mark else Position(shown)
    return Diagnostic.error(where, f"invalid YAML: {problem}" + (f"; {hint}" if hint else ""))


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def _mark(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


def _pos(shown: str, event: yaml.Event) -> Position:
    return Position(shown, event.start_mark.line + 1, event.start_mark.column + 1)


@dataclass
class _Open:
    """A mapping or sequence being built: its value, path, and for mappings the key read."""

    value: Any
    path: Path_
    anchor: str | None
    start: yaml.Event
    weight: int = 1
    key: str | None = None
    size: int = 0  # bytes of scalar text inside, aliases expanded


class _Builder:
    """Builds one document's values from events with an explicit stack (no recursion).

    Every value carries a weight (how many nodes it stands for once aliases are expanded);
    an alias copies its anchor's value, and the document is refused once the nodes copied
    that way pass a bound proportional to its events, so an alias bomb costs nothing.
    After the first refusal the rest of the document's events are ignored; after one for
    depth the file is not read further, which is what keeps any depth cheap: the parser is
    lazy, so it never sees more than the first MAX_DEPTH + 1 levels.
    """

    _resolved: dict[str, str] = {}

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        doc.references = False
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int, int]] = {}
        self.events = 0
        self.expanded = 0
        self.expanded_bytes = 0
        self.refused: Diagnostic | None = None
        self.too_deep = False

    def feed(self, event: yaml.Event) -> None:
        if self.refused is not None:
            return
        self.events += 1
        try:
            self._feed(event)
        except _Refused as refused:
            self.refused = Diagnostic.error(_pos(self.doc.file, refused.event),
                                            refused.message)

    def _feed(self, event: yaml.Event) -> None:
        kind = type(event)
        if kind is _SCALAR and self.stack:  # the common case, inlined (most of any file)
            text: str = event.value  # type: ignore[attr-defined]
            if event.tag is None and (not event.implicit[0] or (  # type: ignore[attr-defined]
                    text and text[0] not in _IMPLICIT_FIRST)):
                tag, value = STR, text  # quoted, or plain with no implicit type: a string
                if "${" in text:
                    self.doc.references = True
            else:
                tag = self._tag(event)  # type: ignore[arg-type]
                value = self._scalar(event, tag)  # type: ignore[arg-type]
            size = len(text)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1, size)
            top = self.stack[-1]
            top.weight += 1
            top.size += size
            into = top.value
            if type(into) is list:
                mark = event.start_mark
                self.doc.positions[(*top.path, len(into))] = (mark.line + 1, mark.column + 1)
                into.append(value)
            elif top.key is None:
                if tag == STR and value not in into:  # a new string key: `_key` inlined
                    mark = event.start_mark
                    self.doc.key_positions[(*top.path, value)] = (mark.line + 1,
                                                                  mark.column + 1)
                    top.key = value
                else:
                    top.key = self._key(value, event, top, tag)
            else:
                mark = event.start_mark
                self.doc.positions[(*top.path, top.key)] = (mark.line + 1, mark.column + 1)
                into[top.key] = value
                top.key = None
            return
        if kind is _SCALAR:  # a document that is one scalar
            value = self._scalar(event, self._tag(event))  # type: ignore[arg-type]
            self._place(value, 1, event, (), len(event.value))  # type: ignore[attr-defined]
            return
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            done = self.stack.pop()
            if done.anchor is not None:
                self.anchors[done.anchor] = (done.value, done.weight, done.size)
            self._place(done.value, done.weight, done.start, None, done.size)
            return
        path = self._child_path(event)
        if kind is yaml.AliasEvent:
            value, weight, size = self._alias(event)  # type: ignore[arg-type]
            self._place(value, weight, event, path, size)
            return
        if len(self.stack) >= MAX_DEPTH:
            self.too_deep = True
            raise _Refused(event, f"nested deeper than {MAX_DEPTH} levels")
        if event.tag not in (None, "!", SEQ, MAP):
            raise _Refused(event, f"unsupported YAML tag {event.tag!r}")
        self.doc.positions[path] = _mark(event)
        empty: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
        self.stack.append(_Open(empty, path, event.anchor, event))

    def _child_path(self, event: yaml.Event) -> Path_:
        """The path of the node `event` starts; for a mapping awaiting a key, the key's."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.key is None:
            return top.path  # a key: not a value of its own
        return (*top.path, top.key)

    def _place(self, value: Any, weight: int, event: yaml.Event,
               path: Path_ | None = None, size: int = 0) -> None:
        """Put a finished value where it belongs: the document, a list, a key, a value."""
        if not self.stack:
            self.doc.value = value
            if path is not None:
                self.doc.positions[path] = _mark(event)
            return
        top = self.stack[-1]
        top.weight += weight
        top.size += size
        if isinstance(top.value, list):
            if path is not None:
                self.doc.positions[path] = _mark(event)
            top.value.append(value)
        elif top.key is None:
            top.key = self._key(value, event, top)
        else:
            if path is not None:
                self.doc.positions[path] = _mark(event)
            top.value[top.key] = value
            top.key = None

    def _key(self, value: Any, event: yaml.Event, top: _Open, tag: str | None = None) -> str:
        """`tag`: the scalar's resolved tag; None for a key that is not a scalar."""
        if tag != STR:
            raise _Refused(event, "mapping keys must be strings (quote it)")
        if value in top.value:
            raise _Refused(event, f"duplicate key {value!r}")
        self.doc.key_positions[(*top.path, value)] = _mark(event)
        return str(value)

    def _alias(self, event: yaml.AliasEvent) -> tuple[Any, int, int]:
        if event.anchor not in self.anchors:
            if any(o.anchor == event.anchor for o in self.stack):
                raise _Refused(event, "a YAML alias refers to itself")
            raise _Refused(event, f"undefined YAML alias {event.anchor!r}")
        value, weight, size = self.anchors[event.anchor]
        self.expanded += weight
        self.expanded_bytes += size
        if self.expanded > 3 * self.events + 10_000:
            raise _Refused(event, "YAML aliases expand too far (an alias bomb?)")
        if self.expanded_bytes > MAX_ALIAS_BYTES:
            raise _Refused(event, f"YAML aliases expand to more than {MAX_ALIAS_BYTES:,} "
                                  "bytes (an alias bomb?)")
        return copy.deepcopy(value), weight, size

    def _tag(self, event: yaml.ScalarEvent) -> str:
        """The scalar's resolved tag: explicit, or implicit by the YAML core schema."""
        if event.tag not in (None, "!"):
            return str(event.tag)
        if event.tag == "!" or not event.implicit[0]:
            return STR  # quoted, or the non-specific tag: a string
        value = event.value
        if value and value[0] not in _IMPLICIT_FIRST:
            return STR  # no implicit type starts with this character
        tag = self._resolved.get(value)
        if tag is None:
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, (True, False))
            if len(self._resolved) < 4096:
                self._resolved[event.value] = tag
        return tag

    def _scalar(self, event: yaml.ScalarEvent, tag: str) -> Any:
        if tag == STR:
            text = str(event.value)
            if "${" in text:
                self.doc.references = True
            return text
        if tag == MERGE:
            raise _Refused(event, "merge keys (<<) are not supported; write the fields")
        if tag not in SCALAR_TAGS:
            raise _Refused(event, f"unsupported YAML tag {tag!r}")
        if tag in (STR, "tag:yaml.org,2002:timestamp"):
            return str(event.value)
        value = event.value
        if tag == INT:
            if len(value) > 40:  # before converting: Python refuses 4,300 digits itself
                raise _Refused(event, f"integer {value[:20]}... is outside what the service "
                                      "stores (64-bit integers)")
            if value.isascii() and value.isdigit() and (value[0] != "0" or len(value) == 1):
                number = int(value)  # the common case; octal, hex, signs, `_`: the long way
            else:
                number = _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR,
                                                             yaml.ScalarNode(tag, value))
            if not -(2 ** 63) <= number < 2 ** 63:
                raise _Refused(event, f"integer {value[:20]}{'...' if len(value) > 20 else ''}"
                                      " is outside what the service stores (64-bit integers)")
            return number
        node = yaml.ScalarNode(tag, event.value)
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)


_SCALAR = yaml.ScalarEvent
_DOCUMENT_START = yaml.DocumentStartEvent
_DOCUMENT_END = yaml.DocumentEndEvent
_RESOLVER = yaml.resolver.Resolver()
_IMPLICIT_FIRST = frozenset(k for k in _RESOLVER.yaml_implicit_resolvers if k)
_CONSTRUCTOR = SafeConstructor()
