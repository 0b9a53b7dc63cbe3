"""`iotc doctor` on a terminal: one line per check, its status coloured."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from rich.console import Console
from rich.markup import escape

STYLES = {"ok": "green", "warn": "yellow", "fail": "red"}


class CheckLike(Protocol):
    status: str
    name: str
    detail: str


def render(console: Console, checks: Iterable[CheckLike]) -> bool:
    """Print each check as it completes; True when none failed."""
    passed = True
    for check in checks:
        console.print(f"[{STYLES[check.status]}]{check.status:<4}[/] {escape(check.name)}: "
                      f"{escape(check.detail)}", highlight=False)
        passed &= check.status != "fail"
    return passed
