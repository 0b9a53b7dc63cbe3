"""Plans as JSON: the `--format json` output, the `--out` plan file, and its integrity.

`format_version` "3"; one entry per change with address, action, reason, before, after and
field changes; the account; the fingerprint (a digest per live object the plan read, or
"absent"); the source (manifest paths, their digest, the plan options). Documented by
`schemas/plan.schema.json`. A plan file holds no secrets: no tokens, no passwords, no private
keys (certificates are public).

Plan files travel between CI jobs as artifacts, so a file read back is untrusted: it must
match the schema, carry a valid HMAC-SHA256 `signature` when `IOTC_PLAN_KEY` is set, and
`apply` executes it only after re-planning from the same manifests gives exactly the same
document (`difference`). May import: `model`, `safefile`, `validators`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from functools import cache
from pathlib import Path
from typing import Any

from ..model import MASK, Address
from ..safefile import write_private
from .model import (
    Account,
    Action,
    Change,
    Estimate,
    FieldChange,
    Impact,
    Plan,
    PlanIssue,
    Reason,
    RolloutProgress,
    Source,
    WaveRow,
)

FORMAT_VERSION = "3"  # 3: warnings and errors are objects (code, address, where)
SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "plan.schema.json"
# Parts of a plan that may differ between the plan job and the apply job without changing
# what apply does: warnings depend on the machine's key store, the signature on the key,
# the impact's estimate on the latency the plan's reads met, a rollout's progress on the
# minute (its push, a change, is compared).
UNCOMPARED = ("warnings", "signature", "impact", "rollouts")


class PlanFileError(Exception):
    """A plan file that cannot be used (unreadable, wrong version, stale)."""


def masked(plan: Plan) -> Plan:
    """The plan as it may be shown or saved: every sensitive variable's value replaced."""
    if not plan.secrets:
        return plan
    secrets = sorted(plan.secrets, key=len, reverse=True)

    def hide(value: Any) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: hide(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(hide(v) for v in value)
        if isinstance(value, PlanIssue):
            return dataclasses.replace(value, message=hide(value.message),
                                       address=hide(value.address))
        return value

    changes = tuple(dataclasses.replace(
        c, before=hide(c.before), after=hide(c.after), note=hide(c.note),
        fields=tuple(dataclasses.replace(f, before=hide(f.before), after=hide(f.after))
                     for f in c.fields)) for c in plan.changes)
    return dataclasses.replace(plan, changes=changes, warnings=hide(plan.warnings),
                               errors=hide(plan.errors), secrets=frozenset())


def to_json(plan: Plan) -> dict[str, Any]:
    plan = masked(plan)
    counts = plan.counts
    return {
        "format_version": FORMAT_VERSION,
        "account": {"pf": plan.account.pf, "env": plan.account.env, "cpid": plan.account.cpid,
                    "dedicated": plan.account.dedicated},
        "destroy": plan.destroy,
        "summary": {"create": counts[Action.CREATE], "update": counts[Action.UPDATE],
                    "replace": counts[Action.REPLACE], "delete": counts[Action.DELETE],
                    "deactivate": counts[Action.DEACTIVATE], "push": counts[Action.PUSH],
                    "unchanged": plan.unchanged},
        "changes": [_change(c) for c in plan.changes],
        "unmanaged": list(plan.unmanaged),
        "ignored": plan.ignored,
        "impact": _impact(plan.impact),
        "rollouts": [_rollout(r) for r in plan.rollouts],
        "warnings": [_issue(w) for w in plan.warnings],
        "errors": [_issue(e) for e in plan.errors],
        "fingerprint": dict(plan.fingerprint),
        "entities": dict(plan.entities),
        "guids": dict(plan.guids),
        **({"source": {"paths": list(plan.source.paths), "digest": plan.source.digest,
                       "options": plan.source.options, "variables": plan.source.variables}}
           if plan.source else {}),
    }


def _impact(impact: Impact) -> dict[str, Any]:
    est = impact.estimate
    return {"devices": [{"template": t, "action": a, "count": n} for t, a, n in impact.devices],
            "connected": impact.connected,
            "guards": [{"code": code, "count": n} for code, n in impact.guards],
            "estimate": None if est is None else {
                "requests": est.requests, "seconds": round(est.seconds, 2),
                "latency_ms": round(est.latency_ms, 1), "parallelism": est.parallelism}}


def _rollout(r: RolloutProgress) -> dict[str, Any]:
    return {"name": r.name, "firmware": r.firmware, "version": r.version,
            "targets": r.targets, "decision": r.decision,
            "waves": [dataclasses.asdict(w) for w in r.waves]}


def _read_rollout(doc: dict[str, Any]) -> RolloutProgress:
    return RolloutProgress(doc["name"], doc["firmware"], doc["version"], doc["targets"],
                           tuple(WaveRow(**w) for w in doc["waves"]), doc["decision"])


def _read_impact(doc: dict[str, Any]) -> Impact:
    est = doc.get("estimate")
    return Impact(tuple((d["template"], d["action"], d["count"]) for d in doc["devices"]),
                  doc["connected"], tuple((g["code"], g["count"]) for g in doc["guards"]),
                  None if est is None else Estimate(est["requests"], est["seconds"],
                                                    est["latency_ms"], est["parallelism"]))


def _issue(issue: PlanIssue) -> dict[str, Any]:
    return {"code": issue.code, "address": issue.address, "where": issue.where,
            "message": issue.message, "text": str(issue)}


def _change(c: Change) -> dict[str, Any]:
    return {"address": str(c.address), "action": c.action.value, "reason": c.reason.name,
            "before": c.before, "after": c.after,
            "fields": [{"name": f.name, "before": f.before, "after": f.after,
                        "forces_replacement": f.forces} for f in c.fields],
            "depends_on": [str(a) for a in c.depends_on], "note": c.note}


def dumps(plan: Plan, key: str | None = None) -> str:
    """The plan as JSON; signed with HMAC-SHA256 when a key is given."""
    doc = to_json(plan)
    if key:
        doc["signature"] = signature(doc, key)
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def write(plan: Plan, path: Path, key: str | None = None) -> None:
    """Atomically: a temp file made with O_EXCL beside `path` (never a planted symlink)."""
    write_private(path, dumps(plan, key).encode("utf-8"), mode=0o644)


def source_digest(files_digest: str, options: dict[str, Any],
                  variables: dict[str, Any]) -> str:
    """The digest a plan records: its manifest files' digest, its options and its variable
    values (sensitive ones masked), together, so none can be edited in a saved plan without
    the digest differing."""
    text = files_digest + "\n" + json.dumps([options, variables], sort_keys=True,
                                            separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def signature(doc: dict[str, Any], key: str) -> str:
    """HMAC-SHA256 over the canonical JSON of everything but the signature itself."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "hmac-sha256:" + hmac.new(key.encode(), canonical.encode(), hashlib.sha256) \
        .hexdigest()


def read(path: Path, key: str | None = None) -> tuple[Plan, dict[str, Any]]:
    """A plan file, checked: readable, this format, signed when a key is set, schema-valid.

    Returns the plan and the document as read, for `difference` against a fresh plan.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise PlanFileError(f"{path}: not a readable plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        version = data.get("format_version") if isinstance(data, dict) else None
        raise PlanFileError(f"{path}: not a plan file of format_version {FORMAT_VERSION}"
                            + (f" (it says {version!r}; run 'iotc plan --out' again)"
                               if version else ""))
    if key:
        given = data.get("signature")
        if not isinstance(given, str):
            raise PlanFileError(f"{path}: the plan is not signed, and IOTC_PLAN_KEY is set")
        if not hmac.compare_digest(given, signature(data, key)):
            raise PlanFileError(f"{path}: the plan's signature does not match (edited, or "
                                "signed with another IOTC_PLAN_KEY)")
    problem = _schema_problem(data)
    if problem:
        raise PlanFileError(f"{path}: damaged plan file: {problem}")
    try:
        return _plan(data), data
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"{path}: damaged plan file ({exc})") from None


def _schema_problem(data: dict[str, Any]) -> str | None:
    import fastjsonschema

    try:
        _plan_validator()(data)
    except fastjsonschema.JsonSchemaException as exc:
        return str(exc.message)
    return None


@cache
def _plan_validator() -> Any:
    from .. import validators

    schema = {k: v for k, v in json.loads(SCHEMA.read_text()).items() if k != "$id"}
    return validators.compiled(schema)


def _plan(data: dict[str, Any]) -> Plan:
    acc = data["account"]
    changes = tuple(Change(
        address=Address.parse(c["address"]), action=Action(c["action"]),
        reason=Reason[c["reason"]], before=c["before"], after=c["after"],
        fields=tuple(FieldChange(f["name"], f["before"], f["after"], f["forces_replacement"])
                     for f in c["fields"]),
        depends_on=tuple(Address.parse(a) for a in c["depends_on"]), note=c.get("note"))
        for c in data["changes"])
    src = data.get("source")
    source = Source(tuple(src["paths"]), src["digest"], dict(src["options"]),
                    dict(src["variables"])) if src else None
    return Plan(account=Account(acc["pf"], acc["env"], acc["cpid"], acc["dedicated"]),
                changes=changes, unchanged=data["summary"]["unchanged"],
                warnings=tuple(_read_issue(w) for w in data["warnings"]),
                errors=tuple(_read_issue(e) for e in data["errors"]),
                fingerprint=dict(data["fingerprint"]), entities=dict(data["entities"]),
                guids=dict(data["guids"]), destroy=bool(data["destroy"]), source=source,
                unmanaged=tuple(data["unmanaged"]), ignored=int(data["ignored"]),
                impact=_read_impact(data["impact"]) if "impact" in data else Impact(),
                rollouts=tuple(_read_rollout(r) for r in data.get("rollouts", ())))


def _read_issue(doc: dict[str, Any]) -> PlanIssue:
    return PlanIssue(doc["code"], doc["message"], doc["address"], doc["where"])


def stale(plan: Plan, fresh: dict[str, str]) -> list[str]:
    """Addresses whose live object changed since the plan read it."""
    return sorted(a for a, digest in plan.fingerprint.items() if fresh.get(a) != digest)


def difference(saved: dict[str, Any], fresh: Plan) -> str | None:
    """The first way a saved plan differs from a plan made now, in one line; None if none.

    Every part is compared (changes field by field, summary, GUIDs, entities, fingerprint,
    source, format) except the UNCOMPARED ones; an edited plan always differs somewhere.
    Changes are matched by address first, so the line names the object a reviewer knows.
    """
    now = to_json(fresh)
    saved_changes = {c.get("address"): c for c in saved.get("changes", [])
                     if isinstance(c, dict)}
    now_changes = {c["address"]: c for c in now["changes"]}
    for address in sorted(set(saved_changes) | set(now_changes), key=str):
        if address not in now_changes:
            return f"{address}: the plan has {saved_changes[address].get('action')!s}, a " \
                   "fresh plan has no change for it"
        if address not in saved_changes:
            return f"{address}: a fresh plan has {now_changes[address]['action']}, the " \
                   "saved plan has no change for it"
        differs = _first_difference(saved_changes[address], now_changes[address])
        if differs:
            return f"{address}: {differs}"
    if [c.get("address") for c in saved.get("changes", [])] != list(now_changes):
        return "changes: the order differs"
    rest = [{k: v for k, v in doc.items() if k not in ("changes", *UNCOMPARED)}
            for doc in (saved, now)]
    return _first_difference(*rest)


def _first_difference(saved: Any, fresh: Any) -> str | None:
    """`path.to.value differs (saved X, fresh Y)` for the first leaf that differs."""
    from deepdiff import DeepDiff

    diff = DeepDiff(saved, fresh, verbose_level=2)
    leaves = sorted((level.path(output_format="list"), level) for levels in diff.tree.values()
                    for level in levels)
    if not leaves:
        return None
    path, level = min(leaves, key=lambda item: [str(p) for p in item[0]])
    name = ".".join(str(p) for p in path) or "plan"
    return f"{name} differs (saved {_short(level.t1)}, fresh {_short(level.t2)})"


def _short(value: Any) -> str:
    if type(value).__name__ == "NotPresent":
        return "nothing"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
