"""Desired and live resources as comparable, JSON-ready dictionaries.

Both sides of every comparison go through here, so the normalisation that makes an applied
fleet plan as "no changes" forever lives in one place: GUIDs upper-cased, attribute and
command order ignored (keyed by name), empty strings equal to nothing, data types upper-case,
aggregate types as a sorted list. Pure functions. May import: `model`.
"""

from __future__ import annotations

from typing import Any

from ..model import (
    AUTH_TYPE_NAMES,
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


def live_device(d: LiveDevice, snap: Snapshot) -> Record:
    return {"guid": d.guid, "duid": d.duid,
            "template": snap.template_code(d.template_guid) or d.template_guid,
            "displayName": d.display_name, "entity": d.entity_name, "active": d.active}


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
