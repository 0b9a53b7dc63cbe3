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
from .variables import Given, Resolved, declarations, resolve, substitute
from .yamlsafe import Document, load_file

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
    `given`), then every other document with its references substituted, checked, built."""
    files, diags = discover(list(paths))
    built = Built()
    digest = hashlib.sha256()
    loaded: list[tuple[Document, ManifestFile]] = []
    for mf in files:
        digest.update(file_digest_line(mf, list(paths)))
        docs, problems = load_file(mf.path, mf.shown)
        diags += problems
        loaded += [(doc, mf) for doc in docs]
    declared: list[Document] = []
    for doc, _ in loaded:
        if _kind(doc) == "Variables":
            problems = _envelope(doc, doc.value) or schema.check(doc, "Variables")
            diags += problems
            declared += [] if problems else [doc]
    variables, problems = declarations(declared)
    resolved, more = resolve(variables, given or Given())
    diags += problems + more
    for doc, mf in loaded:
        if _kind(doc) != "Variables":
            problems, complete = substitute(doc, resolved.values, variables)
            if not complete and isinstance(doc.value, dict):
                _declare_broken(doc.value, built)
            diags += _document(doc, mf, built) if complete else problems
    desired, problems = assemble(built)
    everything = sorted(set(diags + built.diagnostics + problems), key=Diagnostic.order)
    return Loaded(desired, tuple(everything), len(files), len(loaded),
                  "sha256:" + digest.hexdigest(), resolved)


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
