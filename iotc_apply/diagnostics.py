"""Diagnostics: user mistakes as values, collected so one run reports every problem.

`file:line:column: error: message`, with 1-based line and column, pointing at the YAML node
the problem is about. May import: nothing else of iotc_apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Position:
    """Where something came from: a file, and a 1-based line and column in it."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


@dataclass(frozen=True, order=True)
class Diagnostic:
    position: Position
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.severity.value}: {self.message}"

    def order(self) -> tuple[str, int, int, str, str]:
        """The sort key (a plain tuple sorts many times faster than the dataclass order)."""
        p = self.position
        return p.file, p.line, p.column, self.severity.value, self.message

    @classmethod
    def error(cls, position: Position, message: str) -> Diagnostic:
        return cls(position, Severity.ERROR, message)

    @classmethod
    def warning(cls, position: Position, message: str) -> Diagnostic:
        return cls(position, Severity.WARNING, message)


def has_errors(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
