"""Diagnostics on a terminal: one line each, then a one-line summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..diagnostics import Diagnostic, Severity

# rich is imported by the renderers that print through it: the GitHub and JSON formats a
# CI job asks for need none of its ~40 ms of imports
if TYPE_CHECKING:
    from rich.console import Console

    from ..manifest import Loaded

SHOWN = 200


def render(console: Console, diagnostics: Sequence[Diagnostic], shown: int = SHOWN) -> None:
    """One line per diagnostic, at most `shown` of them: a file of 50,000 broken documents
    must not take minutes to print what its first lines already say (the summary counts all).
    """
    from rich.markup import escape

    for d in diagnostics[:shown]:
        style = "diag.error" if d.severity is Severity.ERROR else "diag.warning"
        console.print(f"[diag.position]{escape(str(d.position))}:[/] [{style}]"
                      f"{d.severity.value}:[/] {escape(d.message)}")
    if len(diagnostics) > shown:
        console.print(f"... and {len(diagnostics) - shown} more not shown; fix these and run "
                      "again", highlight=False)


def summary(diagnostics: Sequence[Diagnostic], files: int, documents: int,
            resources: int) -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = len(diagnostics) - errors
    scanned = f"{files} file{'s' * (files != 1)}, {documents} document" \
              f"{'s' * (documents != 1)}"
    if errors:
        return f"{errors} error{'s' * (errors != 1)}" + \
            (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else "") + \
            f" in {scanned}."
    return f"Valid: {scanned}, {resources} resource{'s' * (resources != 1)}" + \
        (f" ({warnings} warning{'s' * (warnings != 1)})." if warnings else ".")


def github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: each problem annotates its line in the pull request.
    Values are escaped as the runner requires (%, CR, LF; also `,` and `:` in properties)."""
    lines = []
    for d in diagnostics:
        p = d.position
        props = f"file={_prop(p.file)}" + (f",line={p.line},col={p.column}" if p.line else "")
        lines.append(f"::{d.severity.value} {props}::{_data(d.message)}")
    return "\n".join(lines) + ("\n" if lines else "")


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def as_json(diagnostics: Sequence[Diagnostic], files: int, documents: int,
            resources: int) -> str:
    """The documented JSON (schemas/diagnostics.schema.json)."""
    import json

    errors = any(d.severity is Severity.ERROR for d in diagnostics)
    return json.dumps({
        "valid": not errors, "files": files, "documents": documents,
        "resources": resources if not errors else 0,
        "diagnostics": [{"file": d.position.file, "line": d.position.line,
                         "column": d.position.column, "severity": d.severity.value,
                         "message": d.message} for d in diagnostics]}, indent=2) + "\n"


def failed_load(console: Console, loaded: Loaded) -> None:
    """Manifests that did not load: every diagnostic, then the summary line."""
    render(console, loaded.diagnostics)
    console.print(summary(loaded.diagnostics, loaded.files, loaded.documents, 0))
