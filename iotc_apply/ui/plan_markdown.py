"""The plan as a pull-request comment: summary table first, details folded, size-capped.

GitHub comments hold 65,536 characters; the rendering stays under `limit` (65,000) by cutting
the listing and saying how many changes were left out. Pure function of the plan.
"""

from __future__ import annotations

from ..plan import Action, Plan
from .plan_text import change_lines, grouped_warnings, header, unmanaged_lines

LIMIT = 65_000


def render(plan: Plan, limit: int = LIMIT) -> str:
    n = plan.counts
    head = [f"### iotc plan: {n[Action.CREATE]} to create, {n[Action.UPDATE]} to update, "
            f"{n[Action.REPLACE]} to replace, {n[Action.DELETE]} to delete", "",
            f"{header(plan)}; {plan.unchanged} unchanged.", ""]
    if plan.errors:
        head += ["**Plan errors: nothing can be applied.**", ""]
        head += [f"- :x: {_md(e)}" for e in plan.errors] + [""]
    head += ["| action | count |", "| --- | ---: |"]
    head += [f"| {a.value} | {n[a]} |" for a in (Action.DELETE, Action.REPLACE, Action.UPDATE,
                                                  Action.CREATE)]
    head.append("")
    if plan.warnings:
        head += [f"- :warning: {_md(w)}" for w in grouped_warnings(plan.warnings)] + [""]
    if plan.unmanaged:
        head += ["Not in the manifests (not pruned):", "", "```", *unmanaged_lines(plan),
                 "```", ""]
    if not plan.changes:
        return "\n".join(head + ["No changes."]) + "\n"
    return "\n".join(head) + "\n" + _details(plan, limit - len("\n".join(head)) - 200)


def _details(plan: Plan, budget: int) -> str:
    opening = f"<details><summary>{len(plan.changes)} change(s), destroys first</summary>\n\n"
    body, used, shown = [], 0, 0
    for change in plan.changes:
        lines = [_coloured(text) for _, text in change_lines(change)]
        size = sum(len(line) + 1 for line in lines)
        if used + size > budget:
            break
        body += lines
        used += size
        shown += 1
    cut = len(plan.changes) - shown
    tail = f"\n_{cut} more change(s) not shown; `iotc plan --format json` lists them all._\n" \
        if cut else ""
    return opening + "```diff\n" + "\n".join(body) + "\n```\n" + tail + "\n</details>\n"


def _coloured(line: str) -> str:
    """GitHub colours the `+` and `-` lines of a diff block and marks `!` ones, only when the
    sign is the line's first character: updates are written `!` (a `~` stays grey) and a
    field's sign moves to the front (`+     attributes.temp...`)."""
    stripped = line.lstrip(" ")
    sign, rest = stripped[:1], stripped[1:]
    if sign == "~":
        sign = "!"
    if sign in ("+", "-", "!") and rest[:1] in (" ", "/"):
        return sign + " " * (len(line) - len(stripped)) + rest
    return line


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")
