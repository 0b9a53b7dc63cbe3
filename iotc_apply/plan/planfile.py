"""Plans as JSON: the `--format json` output, the `--out` plan file, and staleness.

`format_version` "1"; one entry per change with address, action, reason, before, after and
field changes; the account; the fingerprint (a digest per live object the plan read, or
"absent"). Documented by `schemas/plan.schema.json`. A plan file holds no secrets: no tokens,
no passwords, no private keys (certificates are public). Imports `model` and the plan package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..model import Address
from ..safefile import write_private
from .model import Account, Action, Change, FieldChange, Plan, Reason

FORMAT_VERSION = "1"


class PlanFileError(Exception):
    """A plan file that cannot be used (unreadable, wrong version, stale)."""


def to_json(plan: Plan) -> dict[str, Any]:
    counts = plan.counts
    return {
        "format_version": FORMAT_VERSION,
        "account": {"pf": plan.account.pf, "env": plan.account.env, "cpid": plan.account.cpid,
                    "dedicated": plan.account.dedicated},
        "destroy": plan.destroy,
        "summary": {"create": counts[Action.CREATE], "update": counts[Action.UPDATE],
                    "replace": counts[Action.REPLACE], "delete": counts[Action.DELETE],
                    "unchanged": plan.unchanged},
        "changes": [_change(c) for c in plan.changes],
        "warnings": list(plan.warnings),
        "errors": list(plan.errors),
        "fingerprint": dict(plan.fingerprint),
        "entities": dict(plan.entities),
        "guids": dict(plan.guids),
    }


def _change(c: Change) -> dict[str, Any]:
    return {"address": str(c.address), "action": c.action.value, "reason": c.reason.name,
            "before": c.before, "after": c.after,
            "fields": [{"name": f.name, "before": f.before, "after": f.after,
                        "forces_replacement": f.forces} for f in c.fields],
            "depends_on": [str(a) for a in c.depends_on], "note": c.note}


def dumps(plan: Plan) -> str:
    return json.dumps(to_json(plan), indent=2, sort_keys=False) + "\n"


def write(plan: Plan, path: Path) -> None:
    """Atomically: a temp file made with O_EXCL beside `path` (never a planted symlink)."""
    write_private(path, dumps(plan).encode("utf-8"), mode=0o644)


def read(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"{path}: not a readable plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(f"{path}: not a plan file of format_version {FORMAT_VERSION}")
    try:
        return _plan(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"{path}: damaged plan file ({exc})") from None


def _plan(data: dict[str, Any]) -> Plan:
    acc = data["account"]
    changes = tuple(Change(
        address=Address.parse(c["address"]), action=Action(c["action"]),
        reason=Reason[c["reason"]], before=c["before"], after=c["after"],
        fields=tuple(FieldChange(f["name"], f["before"], f["after"], f["forces_replacement"])
                     for f in c["fields"]),
        depends_on=tuple(Address.parse(a) for a in c["depends_on"]), note=c.get("note"))
        for c in data["changes"])
    return Plan(account=Account(acc["pf"], acc["env"], acc["cpid"], acc["dedicated"]),
                changes=changes, unchanged=data["summary"]["unchanged"],
                warnings=tuple(data["warnings"]), errors=tuple(data["errors"]),
                fingerprint=dict(data["fingerprint"]), entities=dict(data["entities"]),
                guids=dict(data["guids"]), destroy=bool(data["destroy"]))


def stale(plan: Plan, fresh: dict[str, str]) -> list[str]:
    """Addresses whose live object changed since the plan read it."""
    return sorted(a for a, digest in plan.fingerprint.items() if fresh.get(a) != digest)
