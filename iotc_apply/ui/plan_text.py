"""The plan on a terminal: Terraform-like symbols, field diffs, destroys first.

Pure function of the plan: unchanged objects are counted, not listed; creates are one line
each (a fleet of 10,000 stays readable); updates and replacements show their field changes.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..plan import Action, Change, Plan

STYLE = {Action.CREATE: "plan.create", Action.UPDATE: "plan.update",
         Action.REPLACE: "plan.replace", Action.DELETE: "plan.delete",
         Action.DEPRECATE: "plan.delete"}
VERB = {Action.CREATE: "create", Action.UPDATE: "update in place",
        Action.REPLACE: "replace (delete, then create)", Action.DELETE: "delete",
        Action.DEPRECATE: "deprecate (firmware cannot be deleted)"}


def value(v: Any) -> str:
    """A field value, short: strings quoted, nothing as (none), mappings compact."""
    if v is None:
        return "(none)"
    if isinstance(v, dict):
        inner = ", ".join(f"{k}: {value(x)}" for k, x in v.items()
                          if x not in (None, [], False))
        return "{" + inner + "}"
    return json.dumps(v, ensure_ascii=False)


def header(plan: Plan) -> str:
    kind = "dedicated" if plan.account.dedicated else "shared"
    return (f"Account: {plan.account.pf}/{plan.account.env}, cpId {plan.account.cpid} "
            f"({kind} instance)")


def change_lines(change: Change) -> list[tuple[str, str]]:
    """(style, text) lines for one change: its headline, then its field changes."""
    style = STYLE[change.action]
    head = f"{change.action.symbol} {change.address}"
    if change.action is Action.CREATE and not change.fields:
        return [(style, head)]
    lines = [(style, f"{head:<34} {VERB[change.action]}: {change.reason.value}")]
    for f in change.fields:
        if f.before is None and isinstance(f.after, dict):
            lines.append(("plan.create", f"    + {f.name}: {value(f.after)}"))
        elif f.after is None and isinstance(f.before, dict):
            lines.append(("plan.delete", f"    - {f.name}"))
        else:
            forces = " (forces replacement)" if f.forces else ""
            lines.append(("plan.update",
                          f"    ~ {f.name}: {value(f.before)} -> {value(f.after)}{forces}"))
    return lines


def render(console: Console, plan: Plan) -> None:
    console.print(header(plan))
    console.print()
    if not plan.changes and not plan.errors:
        console.print(f"No changes. {plan.unchanged} object(s) match the manifests.")
    for change in plan.changes:
        for style, text in change_lines(change):
            console.print(f"[{style}]{escape(text)}[/]")
    if plan.warnings:
        console.print()
        for w in plan.warnings:
            console.print(f"[diag.warning]warning:[/] {escape(w)}")
    if plan.errors:
        console.print()
        for e in plan.errors:
            console.print(f"[diag.error]error:[/] {escape(e)}")
        console.print(f"\n{len(plan.errors)} plan error(s): nothing can be applied.")
        return
    if plan.changes:
        console.print()
        console.print(escape(plan.summary()))
