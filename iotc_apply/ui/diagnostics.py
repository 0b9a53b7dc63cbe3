"""Diagnostics on a terminal: one line each, then a one-line summary."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from ..diagnostics import Diagnostic, Severity


def render(console: Console, diagnostics: Sequence[Diagnostic]) -> None:
    for d in diagnostics:
        style = "diag.error" if d.severity is Severity.ERROR else "diag.warning"
        console.print(f"[diag.position]{escape(str(d.position))}:[/] [{style}]"
                      f"{d.severity.value}:[/] {escape(d.message)}")


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
