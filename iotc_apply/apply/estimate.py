"""How many requests an apply of a plan sends, and how long that should take.

Counted from what `actions.py` calls per step, not measured: a reviewer weighing a change
in a pull request wants "about 2,400 requests, about 4 minutes", not a promise. Retries,
429 pauses and read-backs after lost answers are not counted.
May import: `model`, `plan`.
"""

from __future__ import annotations

from ..model import Kind
from ..plan import Action, Change, Plan
from ..plan.model import Estimate


def requests_for(change: Change) -> int:
    """The requests `actions.py` sends for one change (the common path)."""
    kind, action = change.address.kind, change.action
    after = change.after or {}
    if action in (Action.DELETE, Action.DEPRECATE, Action.DEACTIVATE):
        return 1
    if kind is Kind.TEMPLATE:
        return 1 if action is Action.CREATE else 2 if action is Action.REPLACE else \
            max(1, len(change.fields))
    if kind is Kind.DEVICE:
        create = 1 + (not after.get("active", True))
        if action is Action.CREATE:
            return create
        if action is Action.REPLACE:
            return 1 + create
        moved = any(f.name in ("displayName", "entity") for f in change.fields)
        return 2 * moved + any(f.name == "active" for f in change.fields)
    if kind is Kind.UPGRADE:
        files = len(after.get("files") or ())
        return (action is Action.CREATE) + 1 + files + bool(after.get("release"))
    return 1  # a firmware's create or update


BUILDS = (Action.CREATE, Action.UPDATE, Action.REPLACE)


def depth(plan: Plan) -> int:
    """The steps that must run one after another, at most: removals of devices and
    upgrades, then templates, then devices and firmware, then upgrades (the graph's
    levels, counted by kind instead of walking 100,000 steps)."""
    levels: set[int] = set()
    for c in plan.changes:
        kind = c.address.kind
        if c.action in (Action.DELETE, Action.DEACTIVATE, Action.REPLACE) and \
                kind in (Kind.DEVICE, Kind.UPGRADE):
            levels.add(0)
        if kind is Kind.TEMPLATE:
            levels.add(1)
        elif kind in (Kind.DEVICE, Kind.FIRMWARE) and c.action in BUILDS:
            levels.add(2)
        elif kind is Kind.UPGRADE and c.action in BUILDS:
            levels.add(3)
    return len(levels)


def estimate(plan: Plan, latency: float, parallelism: int, read_back: float) -> Estimate:
    """Requests of the plan's changes at `parallelism` in flight, each taking `latency`
    seconds, but never faster than its longest chain; plus `read_back` seconds for the
    fresh plan that confirms the changes (about what the plan's own reads took)."""
    requests = sum(requests_for(c) for c in plan.changes)
    rounds = max(requests / max(1, parallelism), depth(plan))
    return Estimate(requests, rounds * latency + read_back, latency * 1000, parallelism)
