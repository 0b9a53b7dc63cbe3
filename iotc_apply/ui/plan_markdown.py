"""The plan as a pull-request comment: summary table first, details folded, size-capped.

GitHub comments hold 65,536 characters; the rendering stays under `limit` (65,000) by cutting
the listing and saying how many changes were left out. Pure function of the plan. Names in
it come from the account and from pull requests: text outside code blocks is escaped for
markdown and HTML, and every code block's fence is longer than any backtick run inside it,
its lines one inert line each (`inert.py`), so no name can close it and forge a comment.
"""

from __future__ import annotations

from ..model import Kind
from ..plan import Action, Change, Plan
from .inert import fence, markdown_text
from .plan_text import (
    change_lines,
    grouped_errors,
    grouped_warnings,
    header,
    ignored_line,
    impact_lines,
    rollout_lines,
    unmanaged_lines,
)

LIMIT = 65_000


def render(plan: Plan, limit: int = LIMIT) -> str:
    n = plan.counts
    deactivate = f", {n[Action.DEACTIVATE]} to deactivate" if n[Action.DEACTIVATE] else ""
    head = [f"### iotc plan: {n[Action.CREATE]} to create, {n[Action.UPDATE]} to update, "
            f"{n[Action.REPLACE]} to replace, {n[Action.DELETE]} to delete{deactivate}", ""]
    impact = impact_lines(plan)
    if impact:  # a reviewer weighs this first
        head += [f"> {markdown_text(line.removeprefix('Impact: '))}  " for line in impact]
        head[-1] = head[-1].rstrip()
        head.append("")
    head += [f"{markdown_text(header(plan))}; {plan.unchanged} unchanged.", ""]
    if plan.errors:
        head += ["**Plan errors: nothing can be applied.**", ""]
        head += [f"- :x: {markdown_text(e)}" for e in grouped_errors(plan.errors)] + [""]
    head += ["| action | count |", "| --- | ---: |"]
    head += [f"| {a.value} | {n[a]} |" for a in (Action.DELETE, Action.DEACTIVATE,
                                                  Action.REPLACE, Action.UPDATE, Action.CREATE)
             if n[a] or a is not Action.DEACTIVATE]
    head.append("")
    if plan.warnings:
        head += [f"- :warning: {markdown_text(w)}" for w in grouped_warnings(plan.warnings)] + [""]
    if plan.rollouts:
        head += ["Rollouts:", "", fence(rollout_lines(plan)), ""]
    if plan.unmanaged:
        head += ["Not in the manifests (not pruned):", "", fence(unmanaged_lines(plan)), ""]
    ignored = ignored_line(plan)
    if ignored:
        head += [markdown_text(ignored), ""]
    if not plan.changes:
        return "\n".join(head + ["No changes."]) + "\n"
    budget = limit - len("\n".join(head)) - 400
    summary = _summary(plan)
    return "\n".join(head) + "\n" + summary + _details(plan, budget - len(summary))


GROUP = 10  # device changes of one kind on one template, past which they read as one line


def _template_of(change: Change) -> str:
    side = change.after or change.before or {}
    return str(side.get("template") or "?")


def _summary(plan: Plan) -> str:
    """The changes as a reviewer reads them: every object but devices, and devices grouped
    per template and action once there are more than GROUP (`+ 2000 device(s) on
    template/sensor01: lt-0001, lt-0002, lt-0003, ..., lt-2000`)."""
    groups: dict[tuple[Action, str], list[Change]] = {}
    for c in plan.changes:
        if c.address.kind is Kind.DEVICE:
            groups.setdefault((c.action, _template_of(c)), []).append(c)
    lines: list[str] = []
    done: set[tuple[Action, str]] = set()
    for c in plan.changes:
        key = (c.action, _template_of(c))
        if c.address.kind is Kind.DEVICE and len(groups[key]) > GROUP:
            if key not in done:
                done.add(key)
                members = [m.address.name for m in groups[key]]
                lines.append(f"{c.action.symbol} {len(members)} device(s) on template/{key[1]}"
                             f" ({c.reason.value}): {', '.join(members[:3])}, ..., "
                             f"{members[-1]}")
            continue
        lines += [_coloured(text) for _, text in change_lines(c)]
    if not done:
        return ""  # nothing grouped: the full listing below says it all
    return fence([_coloured(line) for line in lines], "diff") + "\n\n"


def _details(plan: Plan, budget: int) -> str:
    opening = f"<details><summary>{len(plan.changes)} change(s), one by one, destroys first" \
              "</summary>\n\n"
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
    return opening + fence(body, "diff") + "\n" + tail + "\n</details>\n"


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

