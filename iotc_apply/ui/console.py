"""Consoles themed by meaning, and the few plain messages every command prints.

Colour only on a terminal and never with `NO_COLOR`; the same text either way, so tests read
exactly what a user sees. The only module (with its siblings in ui/) that imports rich.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from .inert import inert

if TYPE_CHECKING:
    from rich.console import Console
    from rich.theme import Theme

# rich (~40 ms of imports) is imported when the first console is made: a command that writes
# JSON or YAML and ends well never needs it
STYLES = {
    "diag.error": "bold red", "diag.warning": "yellow", "diag.position": "bold",
    "plan.create": "green", "plan.update": "yellow", "plan.replace": "magenta",
    "plan.delete": "red", "muted": "dim", "ok": "green", "heading": "bold",
}


@functools.cache
def theme() -> Theme:
    from rich.theme import Theme

    return Theme(STYLES)


@functools.cache
def _inert_console() -> type[Console]:
    from rich.console import Console

    class InertConsole(Console):
        """A console that prints no control character it was given: every string printed
        is made inert first (markup tags hold none, so styles still apply), whatever its
        source. Renderers that print one value per line also escape newlines
        (`inert(one_line=True)`)."""

        def print(self, *objects: Any, **kwargs: Any) -> None:
            super().print(*(inert(o) if isinstance(o, str) else o for o in objects),
                          **kwargs)

    return InertConsole


def make_console(stream: IO[str] | None = None, width: int | None = None) -> Console:
    """A console on `stream` (stdout by default) with colour only where it belongs."""
    stream = stream or sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    return _inert_console()(file=stream, theme=theme(), width=width, no_color=plain,
                            color_system=None if plain else "auto", highlight=False,
                            soft_wrap=True, force_terminal=False if plain else None)


def error(console: Console, message: str) -> None:
    from rich.markup import escape

    console.print(f"[diag.error]error:[/] {escape(message)}", markup=True, highlight=False)


def help_formatter() -> type:
    """The argparse formatter for `--help`: rich colours, examples kept as written."""
    from rich_argparse import RawDescriptionRichHelpFormatter

    return RawDescriptionRichHelpFormatter
