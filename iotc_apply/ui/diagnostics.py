"""Diagnostics on a terminal: one line each, then a one-line summary."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from ..diagnostics import Diagnostic, Severity

SHOWN = 200


def render(console: Console, diagnostics: Sequence[Diagnostic], shown: int = SHOWN) -> None:
    """One line per diagnostic, at most `shown` of them: a file of 50,000 broken documents
    must not take minutes to print what its first lines already say (the summary counts all).
    """
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
