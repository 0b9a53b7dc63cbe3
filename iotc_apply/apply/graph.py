"""The plan as a graph of steps, in dependency order.

A change becomes one step, or two for a replacement (delete, then create: names are unique,
so create-before-destroy is impossible). Edges say which steps must finish first: creates
follow references (template -> device, template -> firmware -> upgrade), a template leaves
only after its devices and firmware, an upgrade is deleted only after its firmware's new
upgrades exist (the last upgrade cannot be deleted). Pure. May import: `model`, `plan`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..model import Address, Kind
from ..plan import Action, Change, Plan


@dataclass(frozen=True, order=True)
class Step:
    address: Address
    phase: str  # "delete" | "deprecate" | "deactivate" | "create" | "update"

    def __str__(self) -> str:
        return f"{self.phase} {self.address}"


PHASES = {Action.CREATE: ("create",), Action.UPDATE: ("update",),
          Action.REPLACE: ("delete", "create"), Action.DELETE: ("delete",),
          Action.DEPRECATE: ("deprecate",), Action.DEACTIVATE: ("deactivate",),
          Action.PUSH: ("push",)}


@dataclass(frozen=True)
class Graph:
    steps: tuple[Step, ...]
    changes: dict[Address, Change]
    after: dict[Step, frozenset[Step]]  # step -> the steps that must finish before it

    def dependents(self) -> dict[Step, set[Step]]:
        out: dict[Step, set[Step]] = {s: set() for s in self.steps}
        for step, before in self.after.items():
            for b in before:
                out[b].add(step)
        return out


def build(plan: Plan) -> Graph:
    changes = {c.address: c for c in plan.changes}
    steps = tuple(Step(c.address, p) for c in plan.changes for p in PHASES[c.action])
    index = {(s.address, s.phase): s for s in steps}
    after = {s: frozenset(_needs(s, changes, index)) for s in steps}
    return Graph(steps, changes, after)


def _needs(step: Step, changes: dict[Address, Change],
           index: dict[tuple[Address, str], Step]) -> Iterator[Step]:
    change = changes[step.address]
    kind = step.address.kind
    if step.phase in ("create", "update"):
        if (step.address, "delete") in index:
            yield index[(step.address, "delete")]  # a replacement: its own delete first
        for ref in _references(change):
            if (ref, "create") in index:
                yield index[(ref, "create")]
    if step.phase == "delete" and kind is Kind.TEMPLATE:
        for other in changes.values():
            before = other.before or {}
            if other.address.kind in (Kind.DEVICE, Kind.FIRMWARE) and \
                    before.get("template") == step.address.name:
                for phase in ("delete", "deprecate"):
                    if (other.address, phase) in index:
                        yield index[(other.address, phase)]
    if step.phase == "delete" and kind is Kind.UPGRADE:
        firmware = step.address.name.partition("@")[0]
        for (address, phase), other in index.items():
            if address.kind is Kind.UPGRADE and phase == "create" and \
                    address.name.partition("@")[0] == firmware:
                yield other


def _references(change: Change) -> list[Address]:
    after = change.after or {}
    kind = change.address.kind
    if kind in (Kind.DEVICE, Kind.FIRMWARE) and after.get("template"):
        return [Address(Kind.TEMPLATE, after["template"])]
    if kind is Kind.UPGRADE and after.get("firmware"):
        return [Address(Kind.FIRMWARE, after["firmware"])]
    return []
