"""`iotc get`: the account's objects as rows with stable field names, streamed.

Rows come straight from the list endpoints the plan uses (a device listing per template,
page by page), filtered by a name glob, and are yielded one at a time so 10,000 devices
print without a second copy of the list. Field names are part of the CLI's contract
(README "iotc get"): only ever added to, never renamed. Imports the client layer only.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .client import FIRMWARE_MODULE, IoTConnect
from .model import AUTH_TYPE_NAMES, LiveTemplate

Row = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """A listable kind: its fields in order, and which of them `-o table` shows."""

    fields: tuple[str, ...]
    narrow: tuple[str, ...]


KINDS = {
    "templates": Kind(("code", "name", "authType", "messageVersion", "guid"),
                      ("code", "name", "authType")),
    "devices": Kind(("uniqueId", "displayName", "template", "entity", "active", "guid"),
                    ("uniqueId", "displayName", "template", "entity", "active")),
    "firmware": Kind(("name", "template", "hardware", "deprecated", "description", "guid"),
                     ("name", "template", "hardware", "deprecated")),
    "upgrades": Kind(("firmware", "version", "released", "description", "files", "guid"),
                     ("firmware", "version", "released", "files")),
}


class UnknownKind(ValueError):
    pass


def rows(api: IoTConnect, kind: str, glob: str = "*", template: str | None = None,
         page_size: int = 100) -> Iterator[Row]:
    """Matching objects of one kind, as they are listed."""
    check(kind, glob)
    templates = list(api.templates.list(page_size=page_size))
    codes = {t.guid: t.code for t in templates}
    if template is not None and template not in codes.values():
        return
    if kind == "templates":
        yield from (_template_row(t) for t in templates
                    if _match(t.code, glob) and template in (None, t.code))
    elif kind == "devices":
        yield from _devices(api, codes, glob, template, page_size)
    else:
        yield from _firmware(api, kind, codes, glob, template, page_size)


def check(kind: str, glob: str) -> None:
    """Refuse an unknown kind or a glob with an unclosed `[` before any request."""
    if kind not in KINDS:
        raise UnknownKind(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    depth = 0
    for char in glob:
        depth += {"[": 1, "]": -1}.get(char, 0) if depth or char == "[" else 0
    if depth > 0:
        raise UnknownKind(f"bad glob {glob!r}: a '[' is not closed")


def _match(name: str, glob: str) -> bool:
    """Without case, as the service compares names."""
    return fnmatch.fnmatchcase(name.casefold(), glob.casefold())


def _template_row(t: LiveTemplate) -> Row:
    return {"code": t.code, "name": t.name,
            "authType": AUTH_TYPE_NAMES.get(t.auth_type, str(t.auth_type)),
            "messageVersion": t.message_version, "guid": t.guid}


def _devices(api: IoTConnect, codes: dict[str, str], glob: str, template: str | None,
             page_size: int) -> Iterator[Row]:
    guids = [g for g, c in codes.items() if template in (None, c)]
    for guid in guids:
        for d in api.devices.list(guid, page_size=page_size):
            if _match(d.duid, glob):
                yield {"uniqueId": d.duid, "displayName": d.display_name,
                       "template": codes.get(d.template_guid, d.template_guid),
                       "entity": d.entity_name, "active": d.active, "guid": d.guid}


def _firmware(api: IoTConnect, kind: str, codes: dict[str, str], glob: str,
              template: str | None, page_size: int) -> Iterator[Row]:
    for f in api.firmware.list(page_size=page_size):
        code = f.template_code or codes.get(f.template_guid, f.template_guid)
        if template not in (None, code):
            continue
        if kind == "firmware":
            if _match(f.name, glob):
                yield {"name": f.name, "template": code, "hardware": f.hardware,
                       "deprecated": f.deprecated, "description": f.description,
                       "guid": f.guid}
            continue
        for u in api.firmware.upgrades(f.guid, page_size=page_size):
            if _match(u.version, glob) or _match(f"{f.name}@{u.version}", glob):
                files = u.files or api.files.list(FIRMWARE_MODULE, u.guid)
                yield {"firmware": f.name, "version": u.version, "released": not u.draft,
                       "description": u.description, "files": len(files), "guid": u.guid}
