"""The plan as a value: actions, reasons, changes, and the plan itself.

A `Plan` is immutable and self-contained: each change carries the live values it replaces
(`before`, including the GUIDs the executor needs) and the desired values (`after`), so
`apply PLANFILE` works from the plan alone. Nothing secret is ever put in it: keys are made
at apply time, and passwords and tokens never reach the planner. May import: `model`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..model import Address


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    DEPRECATE = "deprecate"
    DEACTIVATE = "deactivate"  # the first of two-phase removal's applies
    PUSH = "push"  # a rollout's next wave onto its devices (OTA)
    NOOP = "no-op"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self.value]

    @property
    def order(self) -> int:
        """Listing order: destroys first, as a reviewer reads them first."""
        return _ORDER[self.value]


    @property
    def destructive(self) -> bool:
        """Cuts something off: what change windows hold (Project.spec.windows)."""
        return self.value in ("delete", "deprecate", "replace", "deactivate")


_SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "deprecate": "-",
            "deactivate": "-", "push": ">", "no-op": " "}
_ORDER = {"delete": 0, "deprecate": 0, "deactivate": 0, "replace": 1, "update": 2,
          "create": 3, "push": 4, "no-op": 5}


class Reason(StrEnum):
    """Why a change is in the plan; explanation only, never a decision input."""

    NEW = "declared, not in the account"
    CHANGED = "declared fields differ"
    FORCED = "a changed field cannot be updated in place"
    CASCADE = "its template is replaced"
    DESTROY = "destroy requested"
    PRUNE = "not declared, matches a prune glob"
    REMOVED = "removed from its firmware's upgrade list"
    SWEEP = "matches destroy --match"
    WAVE = "the rollout's next wave is due"


@dataclass(frozen=True)
class FieldChange:
    """One field's move; `forces` marks the fields that force a replacement."""

    name: str
    before: Any
    after: Any
    forces: bool = False


@dataclass(frozen=True)
class Change:
    address: Address
    action: Action
    reason: Reason
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    fields: tuple[FieldChange, ...] = ()
    depends_on: tuple[Address, ...] = ()
    note: str | None = None

    @property
    def sort_key(self) -> tuple[int, Address]:
        return self.action.order, self.address


@dataclass(frozen=True)
class Account:
    pf: str
    env: str
    cpid: str
    dedicated: bool


@dataclass(frozen=True)
class Source:
    """What a plan was made from, so `apply PLANFILE` can prove it still is: the manifest
    paths as given, a digest of every manifest file (path and content), and the options
    that shape a plan (destroy, prune, targets, excludes)."""

    paths: tuple[str, ...]
    digest: str
    options: dict[str, Any]
    variables: dict[str, Any] = field(default_factory=dict)  # sensitive ones masked


@dataclass(frozen=True)
class PlanIssue:
    """A plan warning or error as a value: a code tools can match on (`entity-missing`,
    `protected`, ...), the address it is about (None: the plan as a whole), where it was
    declared when that is known (`file:line:column`), and the message. Renderers format it
    (`str` is the one-line form); nothing parses the line again."""

    code: str
    message: str
    address: str | None = None
    where: str | None = None

    def __str__(self) -> str:
        return "".join(f"{part}: " for part in (self.where, self.address) if part) + \
            self.message


@dataclass(frozen=True)
class WaveRow:
    """One wave of a rollout as the account shows it (devices cumulative, as declared)."""

    number: int
    size: str  # as declared: 2, 50%
    devices: int  # devices this wave adds
    success: int
    failed: int
    pending: int  # pushed, not finished (pending, sent)


@dataclass(frozen=True)
class RolloutProgress:
    """Where a rollout stands and what the plan decided: `push wave 2 (9 devices)`,
    `wait: ...`, `halted: ...`, `paused`, `complete`."""

    name: str
    firmware: str
    version: str
    targets: int
    waves: tuple[WaveRow, ...]
    decision: str


# the codes of the plan issues that are safety guards (Project.spec.guards, windows, protect)
GUARD_CODES = ("online", "max-deletes", "template-emptied", "whole-kind", "protected",
               "removal-waiting", "outside-window", "no-connection-data")


@dataclass(frozen=True)
class Estimate:
    """How long an apply of the plan should take: requests it sends, at the latency the
    plan's own reads met and the parallelism it will run with, plus its read-back."""

    requests: int
    seconds: float
    latency_ms: float
    parallelism: int


@dataclass(frozen=True)
class Impact:
    """What a reviewer weighs first: device changes per template and action, connected
    devices cut off (deleted, replaced or deactivated while live), guards that fired."""

    devices: tuple[tuple[str, str, int], ...] = ()  # (template, action, count)
    connected: int = 0
    guards: tuple[tuple[str, int], ...] = ()  # (code, times)
    estimate: Estimate | None = None


class Fingerprints(Mapping[str, str]):
    """A digest per address the plan read, made at the first look: only `plan --out` and
    the proof of a saved plan look, and at 100,000 devices the digests cost ~0.5 s of a plan
    that shows them to no one. Equal to any mapping with the same items."""

    def __init__(self, make: Callable[[], dict[str, str]]) -> None:
        self._make: Callable[[], dict[str, str]] | None = make
        self._digests: dict[str, str] = {}

    def _made(self) -> dict[str, str]:
        if self._make is not None:
            self._digests, self._make = self._make(), None
        return self._digests

    def __getitem__(self, address: str) -> str:
        return self._made()[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())

    def __repr__(self) -> str:
        return f"Fingerprints({self._made()!r})"


@dataclass(frozen=True)
class Plan:
    account: Account
    changes: tuple[Change, ...]
    unchanged: int
    warnings: tuple[PlanIssue, ...] = ()
    errors: tuple[PlanIssue, ...] = ()
    fingerprint: Mapping[str, str] = field(default_factory=dict)
    entities: dict[str, str] = field(default_factory=dict)
    guids: dict[str, str] = field(default_factory=dict)
    destroy: bool = False
    source: Source | None = None
    unmanaged: tuple[str, ...] = ()  # live objects in the manifests' scope nothing declares
    ignored: int = 0  # such objects that Project.spec.ignore leaves alone (not drift)
    impact: Impact = Impact()
    rollouts: tuple[RolloutProgress, ...] = ()
    # values of sensitive variables: in memory only, masked wherever the plan is shown/saved
    secrets: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def counts(self) -> dict[Action, int]:
        out = {a: 0 for a in (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE,
                              Action.DEACTIVATE, Action.PUSH)}
        for c in self.changes:
            out[Action.DELETE if c.action is Action.DEPRECATE else c.action] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        n = self.counts
        deactivate = f", {n[Action.DEACTIVATE]} to deactivate" if n[Action.DEACTIVATE] else ""
        deactivate += f", {n[Action.PUSH]} rollout wave(s) to push" if n[Action.PUSH] else ""
        return (f"Plan: {n[Action.CREATE]} to create, {n[Action.UPDATE]} to update, "
                f"{n[Action.REPLACE]} to replace, {n[Action.DELETE]} to delete{deactivate}; "
                f"{self.unchanged} unchanged.")
