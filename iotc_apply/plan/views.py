"""Desired and live resources as comparable, JSON-ready dictionaries.

Both sides of every comparison go through here, so the normalisation that makes an applied
fleet plan as "no changes" forever lives in one place: GUIDs upper-cased, attribute and
command order ignored (keyed by name), empty strings equal to nothing, data types upper-case,
aggregate types as a sorted list. Pure functions. May import: `model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model import (
    AUTH_TYPE_NAMES,
    DesiredAttribute,
    DesiredCommand,
    DesiredDevice,
    DesiredFirmware,
    DesiredTemplate,
    DesiredUpgrade,
    LiveDevice,
    LiveFirmware,
    LiveTemplate,
    LiveUpgrade,
    Snapshot,
)

Record = dict[str, Any]


def _blank(value: Any) -> Any:
    return None if value in ("", None) else value


def _attribute(name: str, data_type: str, unit: Any, description: Any,
               aggregates: Any) -> Record:
    return {"name": name, "type": data_type.upper(), "unit": _blank(unit),
            "description": _blank(description), "aggregateTypes": sorted(aggregates or ())}


def _command(name: str, command: str, param: bool, ack: bool, ota: bool) -> Record:
    return {"name": name, "command": command, "requiredParam": bool(param),
            "requiredAck": bool(ack), "ota": bool(ota)}


# The executor gets records (a plan file carries them); the client takes model values. These
# turn records back into values, next to the functions that made them, so a record's keys are
# named in this module only.

def attribute_of(r: Record) -> DesiredAttribute:
    return DesiredAttribute(r["name"], r["type"], r["unit"], r["description"],
                            tuple(r["aggregateTypes"]))


def command_of(r: Record) -> DesiredCommand:
    return DesiredCommand(r["name"], r["command"], r["requiredParam"], r["requiredAck"],
                          r["ota"])


def template_of(r: Record) -> DesiredTemplate:
    props = r.get("properties", {})
    return DesiredTemplate(
        r["code"], r["name"], r["authType"], r["messageVersion"],
        tuple(attribute_of(a) for a in r["attributes"].values()),
        tuple(command_of(c) for c in r["commands"].values()),
        description=props.get("description"), data_frequency=props.get("dataFrequency", 60),
        file_support=bool(props.get("fileSupport", False)))


def desired_template(t: DesiredTemplate) -> Record:
    return {
        "code": t.code, "name": t.name, "authType": t.auth_type,
        "messageVersion": t.message_version,
        "attributes": {a.name: _attribute(a.name, a.data_type, a.unit, a.description,
                                          a.aggregate_types) for a in t.attributes},
        "commands": {c.command: _command(c.name, c.command, c.required_param, c.required_ack,
                                         c.ota) for c in t.commands},
        "properties": {"description": t.description, "dataFrequency": t.data_frequency,
                       "fileSupport": t.file_support},
    }


def live_template(t: LiveTemplate, snap: Snapshot) -> Record:
    attrs = snap.attributes.get(t.code, ())
    return {
        "guid": t.guid, "code": t.code, "name": t.name,
        "authType": AUTH_TYPE_NAMES.get(t.auth_type, str(t.auth_type)),
        "messageVersion": t.message_version,
        "attributes": {a.name: _attribute(a.name, a.data_type, a.unit, a.description,
                                          a.aggregate_types) for a in attrs},
        "commands": {c.command: _command(c.name, c.command, c.required_param,
                                         c.required_ack, c.ota) for c in t.commands or ()},
        "attributeGuids": {a.name: a.guid for a in attrs},
        "commandGuids": {c.command: c.guid for c in t.commands or ()},
    }


def desired_device(d: DesiredDevice, snap: Snapshot) -> Record:
    entity = d.entity
    if entity is None:
        root = snap.entity_by_name(None)
        entity = root.name if root else None
    return {"duid": d.duid, "template": d.template, "displayName": d.display_name,
            "entity": entity, "active": d.active,
            "certificate": f"file:{d.certificate.path}" if d.certificate else
            "external" if d.external else "auto",
            **({"certificatePem": d.certificate.pem} if d.certificate else {})}


# A device's compared fields, once: record key -> its value in the live listing. The
# planner's shortcut for an unchanged device compares exactly these (`unchanged_device`), so
# a field added here is compared there too; `guid` is carried, `duid` is the key.
LIVE_DEVICE: dict[str, Callable[[LiveDevice, Snapshot], Any]] = {
    "template": lambda d, snap: snap.template_code(d.template_guid) or d.template_guid,
    "displayName": lambda d, snap: d.display_name,
    "entity": lambda d, snap: d.entity_name,
    "active": lambda d, snap: d.active,
}


def live_device(d: LiveDevice, snap: Snapshot) -> Record:
    return {"guid": d.guid, "duid": d.duid, **{k: get(d, snap) for k, get in LIVE_DEVICE.items()}}


def unchanged_device(live: LiveDevice, after: Record, snap: Snapshot) -> bool:
    """What `_diff` of the two records finds when nothing differs, without building them
    (the bulk of a plan: 100,000 devices, most unchanged)."""
    for key, get in LIVE_DEVICE.items():  # noqa: SIM110 (a loop: all(genexpr) costs more)
        if after.get(key) != get(live, snap):
            return False
    return True


def desired_firmware(f: DesiredFirmware) -> Record:
    first = f.upgrades[0] if f.upgrades else None
    return {"name": f.name, "template": f.template, "hardware": f.hardware,
            "description": _blank(f.description),
            "firstUpgrade": first.version if first else None}


def live_firmware(f: LiveFirmware, snap: Snapshot) -> Record:
    code = f.template_code or snap.template_code(f.template_guid)
    return {"guid": f.guid, "name": f.name, "template": code, "hardware": f.hardware,
            "description": _blank(f.description), "deprecated": f.deprecated}


def desired_upgrade(u: DesiredUpgrade) -> Record:
    return {"firmware": u.firmware, "version": u.version, "description": _blank(u.description),
            "files": sorted(({"name": f.name, "md5": f.md5, "size": f.size, "path": f.path}
                             for f in u.files), key=lambda f: f["name"]),
            "release": u.release}


def live_upgrade(u: LiveUpgrade, firmware: str, snap: Snapshot) -> Record:
    files = snap.files.get(u.guid, u.files)
    return {"guid": u.guid, "firmware": firmware, "version": u.version,
            "description": _blank(u.description),
            "files": sorted(({"name": f.name, "md5": f.tag, "guid": f.guid} for f in files),
                            key=lambda f: f["name"]),
            "release": not u.draft}


def file_set(files: list[Record]) -> set[tuple[str, str]]:
    return {(f["name"], str(f.get("md5") or "")) for f in files}
