"""The plan on a terminal: Terraform-like symbols, field diffs, destroys first.

Pure function of the plan: unchanged objects are counted, not listed; creates are one line
each (a fleet of 10,000 stays readable); updates and replacements show their field changes.
Every line is made inert (`inert.py`): no name can move the cursor, retitle the window or
start a line of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape as _markup

from ..plan import Action, Change, Plan, PlanIssue
from .inert import inert

STYLE = {Action.CREATE: "plan.create", Action.UPDATE: "plan.update",
         Action.REPLACE: "plan.replace", Action.DELETE: "plan.delete",
         Action.DEPRECATE: "plan.delete", Action.DEACTIVATE: "plan.delete",
         Action.PUSH: "plan.update"}
VERB = {Action.CREATE: "create", Action.UPDATE: "update in place",
        Action.REPLACE: "replace (delete, then create)", Action.DELETE: "delete",
        Action.DEPRECATE: "deprecate (firmware cannot be deleted)"}


def escape(text: str) -> str:
    """One line of the plan as rich markup: names from the account or a manifest made inert
    (control characters and newlines written as escapes), then markup-escaped."""
    return _markup(inert(text, one_line=True))


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


def rollout_lines(plan: Plan) -> list[str]:
    """Each rollout: what it pushes where, the plan's decision, and its wave table."""
    out: list[str] = []
    for r in plan.rollouts:
        out.append(f"rollout/{r.name}: {r.firmware} {r.version} to {r.targets} device(s): "
                   f"{r.decision}")
        if r.waves:
            out.append(f"    {'wave':<6}{'size':>6}{'devices':>9}{'success':>9}{'failed':>8}"
                       f"{'pending':>9}")
            out += [f"    {w.number:<6}{w.size:>6}{w.devices:>9}{w.success:>9}{w.failed:>8}"
                    f"{w.pending:>9}" for w in r.waves]
    return out


IMPACT_TEMPLATES = 10  # templates listed in the impact block; the JSON plan has them all


def impact_lines(plan: Plan) -> list[str]:
    """The summary block on top: device changes per template and action, then one line with
    the connected devices cut off, the guards that spoke, and how long an apply should
    take (`--format json` has the same as `impact`)."""
    impact = plan.impact
    if not plan.changes:
        return []
    per: dict[str, list[str]] = {}
    for template, action, n in impact.devices:
        per.setdefault(template, []).append(f"{n} to {action}")
    lines = [f"Impact: template/{t}: devices {', '.join(parts)}"
             for t, parts in list(per.items())[:IMPACT_TEMPLATES]]
    if len(per) > IMPACT_TEMPLATES:
        lines.append(f"Impact: ... and devices on {len(per) - IMPACT_TEMPLATES} more "
                     "template(s) (all in the JSON plan)")
    fired = ", ".join(f"{code} ({n})" for code, n in impact.guards) or "none"
    last = [f"{impact.connected} connected device(s) cut off", f"guards fired: {fired}"]
    est = impact.estimate
    if est is not None:
        last.append(f"about {est.requests} request(s), {_duration(est.seconds)} "
                    f"({est.latency_ms:.0f} ms per request, parallelism {est.parallelism})")
    return lines + ["Impact: " + "; ".join(last)]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


SHOWN_NAMES = 5  # attribute names listed on a template's create line
UNMANAGED_SHOWN = 20
GROUPED = 3  # more warnings than this with one message become one line


# json.dumps(text, ensure_ascii=False) without its per-call set-up (a fifth of a 100,000-
# create plan's rendering went there)
_quoted = json.encoder.encode_basestring  # type: ignore[attr-defined]


def created(after: dict[str, Any] | None) -> str:
    """What a create makes, on its line: `template=pump01 entity=Plant-A name="Pump 1"`."""
    a = after or {}
    parts: list[str] = []
    if "duid" in a:  # a device
        parts += [f"template={a.get('template')}", f"entity={a.get('entity') or '(root)'}"]
        if a.get("displayName") not in (None, a.get("duid")):
            parts.append(f"name={_quoted(str(a['displayName']))}")
        if a.get("active") is False:
            parts.append("active=false")
    elif "attributes" in a:  # a template
        names = list(a["attributes"])
        shown = ", ".join(names[:SHOWN_NAMES]) + (f", +{len(names) - SHOWN_NAMES} more"
                                                   if len(names) > SHOWN_NAMES else "")
        parts += [f"name={json.dumps(a.get('name'), ensure_ascii=False)}",
                  f"authType={a.get('authType')}", f"attributes=[{shown}]"]
        if a.get("commands"):
            parts.append(f"commands=[{', '.join(a['commands'])}]")
    elif "hardware" in a:  # a firmware
        parts += [f"template={a.get('template')}", f"hardware={a.get('hardware')}"]
    elif "version" in a:  # an upgrade
        parts.append(f"files=[{', '.join(f['name'] for f in a.get('files') or [])}]")
        if a.get("release"):
            parts.append("release=true")
    return "  ".join(parts)


def change_lines(change: Change) -> list[tuple[str, str]]:
    """(style, text) lines for one change: its headline, then its field changes."""
    style = STYLE[change.action]
    head = f"{change.action.symbol} {change.address}"
    if change.action is Action.CREATE and not change.fields:
        what = created(change.after)
        return [(style, f"{head:<34} {what}" if what else head)]
    seen = f" ({change.note})" if change.note and change.address.kind.value == "device" \
        else ""
    if change.action is Action.DEACTIVATE:  # the note says it all: `(deactivate; ...)`
        return [(style, f"{head}{seen}: {change.reason.value}")]
    if change.action is Action.PUSH:  # `> rollout/x   push wave 2 (9 device(s))`
        return [(style, f"{head:<34} {change.note}: {change.reason.value}")]
    lines = [(style, f"{head:<34} {VERB[change.action]}: {change.reason.value}{seen}")]
    for f in change.fields:
        if f.before is None and f.after is not None and not f.forces:
            lines.append(("plan.create", f"    + {f.name}: {value(f.after)}"))
        elif f.after is None and isinstance(f.before, dict):
            lines.append(("plan.delete", f"    - {f.name}"))
        elif f.after is None and f.before is not None and not f.forces:
            lines.append(("plan.delete", f"    - {f.name}: {value(f.before)}"))
        else:
            forces = " (forces replacement)" if f.forces else ""
            lines.append(("plan.update",
                          f"    ~ {f.name}: {value(f.before)} -> {value(f.after)}{forces}"))
    return lines


def unmanaged_lines(plan: Plan) -> list[str]:
    """`?` lines for live objects nothing declares, aggregated past UNMANAGED_SHOWN, then
    the three things a user can do about them (a partial export leaves such objects)."""
    if not plan.unmanaged:
        return []
    lines = [f"? {a:<32} not in the manifests" for a in plan.unmanaged[:UNMANAGED_SHOWN]]
    more = len(plan.unmanaged) - UNMANAGED_SHOWN
    if more > 0:
        lines.append(f"? ... and {more} more not in the manifests (all in the JSON plan)")
    first = plan.unmanaged[0]
    lines.append(f"? bring them in: iotc export DIR --match {first!r}; leave them alone: "
                 "Project.spec.ignore; delete them: Project.spec.prune")
    return lines


def ignored_line(plan: Plan) -> str | None:
    """How many undeclared objects Project.spec.ignore leaves alone (never silent)."""
    if not plan.ignored:
        return None
    return f"{plan.ignored} undeclared device(s) on declared templates left alone " \
        "(Project.spec.ignore)."


SHOWN_LINES = 40  # lines of one list (errors, warnings) shown; the JSON plan has them all


def folded(issues: Sequence[PlanIssue], noun: str = "item", where: str = "the JSON plan",
           cause: Callable[[str], str] = lambda message: message) -> list[str]:
    """A list as a reader takes it in: issues about an address sharing a `cause` (the
    message, by default) past GROUPED become `N devices: cause: a, b, c, ... (all in the JSON
    plan)`, in order of first appearance; fewer stay as written (`file:line:col: address:
    message`); past SHOWN_LINES lines the rest is counted, not listed."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for issue in issues:
        key = cause(issue.message) if issue.address else str(issue)
        groups.setdefault(key, []).append((issue.address or "", str(issue)))
    out = []
    for message, members in groups.items():
        subjects = [address for address, _ in members]
        if len(members) <= GROUPED or not all(subjects):
            out += [line for _, line in members]
            continue
        names = ", ".join(s.partition("/")[2] for s in subjects[:GROUPED])
        kinds = {s.partition("/")[0] for s in subjects}
        kind = f"{kinds.pop()}s" if len(kinds) == 1 else "objects"
        out.append(f"{len(subjects)} {kind}: {message}: {names}, ... (all in {where})")
    if len(out) > SHOWN_LINES:
        more = len(out) - SHOWN_LINES + 1
        out = out[:SHOWN_LINES - 1] + [f"... and {more} more {noun}(s) (all in {where})"]
    return out


def grouped_warnings(warnings: Sequence[PlanIssue]) -> list[str]:
    return folded(warnings, "warning")


def grouped_errors(errors: Sequence[PlanIssue]) -> list[str]:
    return folded(errors, "error")


Line = list[tuple[str, str]]  # one printed line: (style, text) parts; "" is unstyled


def render(console: Console, plan: Plan) -> None:
    """Sections (changes, unmanaged, warnings, errors, summary), one blank line apart.

    Lines are (style, text) parts made inert once; without colour they are written to the
    console's stream as plain text in one go, with colour as one rich Text: a print per
    line cost ~130 us (13 s for a 100,000-create plan), this costs a few."""
    sections: list[list[Line]] = [[[("", header(plan))]]]
    if plan.changes:
        sections.append([[("muted", line)] for line in impact_lines(plan)])
    if not plan.changes and not plan.errors:
        sections.append([[("", f"No changes. {plan.unchanged} object(s) match the "
                               "manifests.")]])
    if plan.changes:
        sections.append([[(style, text)] for change in plan.changes
                         for style, text in change_lines(change)])
    if plan.rollouts:
        sections.append([[("", line)] for line in rollout_lines(plan)])
    if plan.unmanaged:
        sections.append([[("diag.warning", line)] for line in unmanaged_lines(plan)])
    ignored = ignored_line(plan)
    if ignored:
        sections.append([[("muted", ignored)]])
    if plan.warnings:
        sections.append([[("diag.warning", "warning:"), ("", " " + w)]
                         for w in grouped_warnings(plan.warnings)])
    if plan.errors:
        sections.append([[("diag.error", "error:"), ("", " " + e)]
                         for e in grouped_errors(plan.errors)])
        sections.append([[("", f"{len(plan.errors)} plan error(s): nothing can be "
                               "applied.")]])
    elif plan.changes:
        sections.append([[("", plan.summary())]])
    lines = [[(style, inert(text, one_line=True)) for style, text in line]
             for line in _spaced(sections)]
    if console.no_color or not console.is_terminal:
        console.file.write("".join("".join(t for _, t in line) + "\n" for line in lines))
        console.file.flush()
        return
    from rich.text import Text

    body = Text()
    for line in lines:
        for style, text in line:
            body.append(text, style=style or None)
        body.append("\n")
    body.rstrip()
    console.print(body, soft_wrap=True)


def _spaced(sections: list[list[Line]]) -> Iterator[Line]:
    for i, section in enumerate(sections):
        if i:
            yield []
        yield from section
