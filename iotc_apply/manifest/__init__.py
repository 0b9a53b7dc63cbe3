"""Manifests: YAML files in, the desired state and every problem found out.

`load(paths)` never raises on bad input: it returns the `Desired` state it could assemble and
the diagnostics (`file:line:column: error: message`), sorted by position, so one run reports
every problem. Pipeline: discover files -> safe YAML with positions -> apiVersion/kind ->
JSON Schema -> per-kind values (files resolved inside the root) -> cross-document checks.
May import: `diagnostics`, `model`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..diagnostics import Diagnostic, has_errors
from ..model import Desired
from . import schema
from .checks import assemble
from .files import ManifestFile, discover, file_digest_line
from .kinds import BUILDERS, Built
from .spread import map_runs
from .variables import Given, Resolved, declarations, resolve, substitute
from .yamlsafe import Document, load_file, size_problem

API_VERSION = "iotc/v1"


@dataclass(frozen=True)
class Loaded:
    desired: Desired
    diagnostics: tuple[Diagnostic, ...]
    files: int
    documents: int
    digest: str = ""
    variables: Resolved = field(default_factory=Resolved)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def load(paths: Sequence[str], given: Given | None = None) -> Loaded:
    """Every manifest under `paths`: Variables documents first (their values resolved from
    `given`), then every other document with its references substituted, checked, built.
    A large tree of files is read on every core where that is safe (`spread`), each run of
    files built apart and added in file order: the same result as reading them one by one."""
    files, diags = discover(list(paths))
    built = Built()
    digest = hashlib.sha256()
    # Variables first: only the files that can hold a Variables document are parsed now
    # (kept for the second pass); every other file is parsed, built and dropped one at a
    # time, so memory follows the largest file, not the fleet.
    early: dict[int, list[Document]] = {}
    declared: list[Document] = []
    for i, mf in enumerate(files):
        digest.update(file_digest_line(mf, list(paths)))
        if _may_declare_variables(mf):
            docs, problems = load_file(mf.path, mf.shown)
            diags += problems
            early[i] = docs
            for doc in docs:
                if _kind(doc) == "Variables":
                    problems = _envelope(doc, doc.value) or schema.check(doc, "Variables")
                    diags += problems
                    declared += [] if problems else [doc]
    variables, problems = declarations(declared)
    resolved, more = resolve(variables, given or Given())
    diags += problems + more

    def read(run: range) -> tuple[Built, list[Diagnostic], int]:
        """The files of `run`, parsed (unless the first pass did), checked and built."""
        part, found, documents = Built(), [], 0
        for i in run:
            mf = files[i]
            docs = early.pop(i, None)
            if docs is None:
                docs, problems = load_file(mf.path, mf.shown)
                found += problems
                found += [Diagnostic.error(doc.where(("kind",)), "write a Variables "
                                           "document's kind plainly (kind: Variables): it is "
                                           "read before the others")
                          for doc in docs if _kind(doc) == "Variables"]
            documents += len(docs)
            for doc in docs:
                if _kind(doc) != "Variables":
                    problems, complete = substitute(doc, resolved.values, variables)
                    if not complete and isinstance(doc.value, dict):
                        _declare_broken(doc.value, part)
                    found += _document(doc, mf, part) if complete else problems
        return part, found, documents

    documents = 0
    for part, found, count in map_runs(read, [_size(mf) for mf in files]):
        built.extend(part)
        diags += found
        documents += count
    desired, problems = assemble(built)
    everything = sorted(set(diags + built.diagnostics + problems), key=Diagnostic.order)
    return Loaded(desired, tuple(everything), len(files), documents,
                  "sha256:" + digest.hexdigest(), resolved)


def _may_declare_variables(mf: ManifestFile) -> bool:
    """Whether a file can hold a Variables document: its text names the kind. (A kind
    spelt with YAML escapes is refused with its own message in the second pass.)"""
    try:
        if size_problem(mf.path):
            return False  # refused when it is read
        return b"Variables" in mf.path.read_bytes()
    except OSError:
        return False


def _size(mf: ManifestFile) -> int:
    """Bytes to read (0 when unknown: the read reports why)."""
    try:
        return mf.path.stat().st_size
    except OSError:
        return 0


def _kind(doc: Document) -> object:
    return doc.value.get("kind") if isinstance(doc.value, dict) else None


def _document(doc: Document, mf: ManifestFile, built: Built) -> list[Diagnostic]:
    """Envelope checks and schema, then hand the document to its kind's builder."""
    value = doc.value
    if not isinstance(value, dict):
        return [Diagnostic.error(doc.where(()), "a manifest document must be a mapping with "
                                               "apiVersion, kind, metadata and spec")]
    problems = _envelope(doc, value)
    if not problems:
        problems = schema.check(doc, value["kind"])
    if problems:
        _declare_broken(value, built)
        return problems
    before = len(built.templates)
    BUILDERS[value["kind"]](doc, mf, built)
    if value["kind"] == "Template" and len(built.templates) == before:
        _declare_broken(value, built)
    return []


def _declare_broken(value: dict[str, object], built: Built) -> None:
    """A template document that failed still declares its name, so the devices and firmware
    that refer to it report nothing more: one mistake, one error (the root cause)."""
    kind = str(value.get("kind") or "")
    meta = value.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    looks_like = difflib.get_close_matches(kind.lower(), ["template"], n=1, cutoff=0.6)
    if isinstance(name, str) and looks_like:
        built.broken_templates.add(name)


def _envelope(doc: Document, value: dict[str, object]) -> list[Diagnostic]:
    out = []
    if "apiVersion" not in value:
        out.append(Diagnostic.error(doc.where(()), f"missing apiVersion (expected "
                                                   f"'{API_VERSION}')"))
    elif value["apiVersion"] != API_VERSION:
        out.append(Diagnostic.error(doc.where(("apiVersion",)),
                                    f"unknown apiVersion {value['apiVersion']!r} (expected "
                                    f"'{API_VERSION}')"))
    kind = value.get("kind")
    if kind is None:
        out.append(Diagnostic.error(doc.where(()), "missing kind (one of "
                                                   f"{', '.join(schema.KIND_SCHEMAS)})"))
    elif kind not in schema.KIND_SCHEMAS:
        kinds = list(schema.KIND_SCHEMAS)
        lowered = {k.lower(): k for k in kinds}
        match = difflib.get_close_matches(str(kind).lower(), list(lowered), n=1, cutoff=0.5)
        hint = f"; did you mean '{lowered[match[0]]}'?" if match else \
            f" (one of {', '.join(kinds)})"
        out.append(Diagnostic.error(doc.where(("kind",)), f"unknown kind {kind!r}{hint}"))
    return out


__all__ = ["Desired", "Loaded", "load"]
