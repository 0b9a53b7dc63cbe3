"""Device templates, their attributes and commands (device service).

Reads tolerate every documented spelling (`code`/`templateCode`, lower-case GUIDs from quick
create, 404 or 409 for "not found"); writes use the quick-create JSON and the attribute and
command update endpoints. Returns `model` values. May import: `model`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from ..model import (
    AUTH_TYPE_CODES,
    DesiredAttribute,
    DesiredCommand,
    DesiredTemplate,
    LiveAttribute,
    LiveCommand,
    LiveTemplate,
)
from .errors import ABSENT, ApiError
from .session import ApiSession
from .session import guid_of as _guid

SERVICE = "device"


def _new_id(item: dict[str, Any] | None) -> Any:
    """Attribute and command creates answer `newId` (AWS swagger) or `newid` (ALV, Azure)."""
    item = item or {}
    return item.get("newId") or item.get("newid")


def template_from_wire(item: dict[str, Any]) -> LiveTemplate:
    commands = item.get("commands")
    return LiveTemplate(
        guid=_guid(item.get("guid")),
        code=str(item.get("templateCode") or item.get("code") or ""),
        name=str(item.get("templateName") or item.get("name") or ""),
        auth_type=int(item.get("authType") or 0),
        message_version=str(item.get("messageVersion") or ""),
        firmware_guid=_guid(item.get("firmwareGuid")) or None,
        commands=tuple(command_from_wire(c) for c in commands) if isinstance(commands, list)
        else None,
        created=item.get("createdDate") or None,
        device_count=_count(item.get("deviceCount")),
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def aggregates_from_wire(value: Any) -> tuple[str, ...]:
    """`aggregateType` as a list of names (AZ swagger AttributeList), a list of objects with
    a name, or an object keyed by name (its truthy keys); sorted, so no shape ever diffs."""
    if isinstance(value, dict):
        names = [str(k) for k, v in value.items() if v]
    elif isinstance(value, list):
        names = [str(v.get("name") or v.get("type") or "") if isinstance(v, dict) else str(v)
                 for v in value]
    else:
        names = []
    return tuple(sorted(n for n in names if n))


def attribute_from_wire(item: dict[str, Any]) -> LiveAttribute:
    return LiveAttribute(
        guid=_guid(item.get("guid")), name=str(item.get("localName") or ""),
        data_type=str(item.get("dataTypeName") or "").upper(), unit=item.get("unit") or None,
        description=item.get("description") or None,
        aggregate_types=aggregates_from_wire(item.get("aggregateType")),
        sequence=int(item.get("sequence") or 0))


def command_from_wire(item: dict[str, Any]) -> LiveCommand:
    return LiveCommand(
        guid=_guid(item.get("guid")), name=str(item.get("name") or ""),
        command=str(item.get("command") or ""), required_param=bool(item.get("requiredParam")),
        required_ack=bool(item.get("requiredAck")), ota=bool(item.get("isOTACommand")))


# -- model values to the wire: the one place the write names are spelled ------------------------


def template_json(t: DesiredTemplate) -> dict[str, Any]:
    """Quick-create JSON of a template, in the vendor sample's shape (`sample_shape`)."""
    properties = {"description": t.description, "dataFrequency": t.data_frequency,
                  "fileSupport": t.file_support}
    return sample_shape({
        "code": t.code, "name": t.name, "authType": AUTH_TYPE_CODES[t.auth_type],
        "messageVersion": t.message_version,
        "attributes": [{"name": a.name, "type": a.data_type, "unit": a.unit or "",
                        "description": a.description or "",
                        "aggregateTypes": list(a.aggregate_types)} for a in t.attributes],
        "commands": [{"name": c.name, "command": c.command, "requiredParam": c.required_param,
                      "requiredAck": c.required_ack, "isOTACommand": c.ota}
                     for c in t.commands],
        "properties": {k: v for k, v in properties.items() if v is not None},
    })


def command_body(template_guid: str, c: DesiredCommand) -> dict[str, Any]:
    return {"name": c.name, "deviceTemplateGuid": template_guid, "command": c.command,
            "requiredParam": c.required_param, "requiredAck": c.required_ack,
            "isOTACommand": c.ota}


def attribute_body(template_guid: str, a: DesiredAttribute, type_guid: str) -> dict[str, Any]:
    return {"localName": a.name, "deviceTemplateGuid": template_guid,
            "dataTypeGuid": type_guid, "description": a.description, "unit": a.unit,
            "aggregateType": list(a.aggregate_types)}


def sample_shape(definition: dict[str, Any]) -> dict[str, Any]:
    """The vendor sample's shape around our fields (values we set win over defaults)."""
    props = dict(definition.get("properties") or {})
    props.setdefault("description", "")
    props["dataFrequency"] = str(props.get("dataFrequency", 60))
    props.setdefault("fileSupport", False)
    return {"messageVersion": "2.1", "msgCode": "", "greenGrass": "0", "wireless": "0",
            **definition, "properties": props, "_meta": {"version": "2.0"}}


class TemplatesClient:
    """`/device-template`, `/template-attribute`, `/template-command`."""

    def __init__(self, session: ApiSession) -> None:
        self.session = session
        self._types: dict[str, tuple[str, frozenset[str] | None]] | None = None
        self._lock = threading.Lock()

    def list(self, page_size: int = 100) -> Iterator[LiveTemplate]:
        for item in self.session.pages(SERVICE, "/device-template", page_size=page_size):
            yield template_from_wire(item)

    def get_by_code(self, code: str) -> LiveTemplate | None:
        return self._one(f"/device-template/template-code/{code}")

    def get(self, guid: str) -> LiveTemplate | None:
        return self._one(f"/device-template/{guid}")

    def _one(self, path: str) -> LiveTemplate | None:
        try:
            item = self.session.call(SERVICE, "GET", path).first()
        except ABSENT:
            return None
        return template_from_wire(item) if item else None

    def attributes(self, template_guid: str) -> tuple[LiveAttribute, ...]:
        """All attributes in `sequence` order; empty when the template does not exist."""
        try:
            items = list(self.session.pages(SERVICE, f"/template-attribute/{template_guid}",
                                            page_size=1000))
        except ABSENT:
            return ()
        return tuple(sorted((attribute_from_wire(i) for i in items), key=lambda a: a.sequence))

    def commands(self, template_guid: str) -> tuple[LiveCommand, ...]:
        try:
            env = self.session.call(SERVICE, "GET", f"/template-command/{template_guid}",
                                    ok=(200, 204))
        except ABSENT:
            return ()
        return tuple(command_from_wire(i) for i in env.items())

    def create(self, template: DesiredTemplate) -> str:
        """Quick-create from template JSON; returns the new template's (upper-case) GUID.

        The JSON is shaped as every vendor sample is (OLD examples/sample-device-template.json:
        `msgCode`, `greenGrass` and `wireless` as strings, `properties.dataFrequency` as a
        string, `_meta.version` "2.0") and sent compact with CRLF line endings, as the official
        client does to avoid templates that later cannot be deleted.
        """
        text = json.dumps(template_json(template), separators=(",", ":")).replace(
            "\n", "\r\n")
        env = self.session.call(SERVICE, "POST", "/device-template/quick",
                                files={"file": ("template.json", text.encode(),
                                                "application/json")})
        item = env.first() or {}
        return _guid(item.get("deviceTemplateGuid"))

    def rename(self, guid: str, name: str) -> None:
        """`PUT /device-template/{guid}` takes the name and the template's firmware GUID
        (AE and AZ swaggers: `{name, firmwareguid}`). Whether it merges or replaces no source
        shows, so the current template is read and its firmware sent along: a rename never
        detaches the template's firmware, whichever the service does."""
        current = self.get(guid)
        body: dict[str, Any] = {"name": name}
        if current is not None and current.firmware_guid:
            body["firmwareguid"] = current.firmware_guid
        self.session.call(SERVICE, "PUT", f"/device-template/{guid}", json_body=body)

    def delete(self, guid: str) -> None:
        self.session.call(SERVICE, "DELETE", f"/device-template/{guid}")

    def data_types(self) -> dict[str, str]:
        """Data type name -> GUID (the attribute endpoints take GUIDs), fetched once."""
        return {name: guid for name, (guid, _) in self._catalogue().items()}

    def aggregates(self) -> dict[str, frozenset[str]]:
        """Data type name -> the aggregate types it allows, for the types whose catalogue
        entry lists them (Azure's `aggregates`; the AWS catalogue has no such field)."""
        return {name: allowed for name, (_, allowed) in self._catalogue().items()
                if allowed is not None}

    def _catalogue(self) -> dict[str, tuple[str, frozenset[str] | None]]:
        with self._lock:
            if self._types is None:
                env = self.session.call(SERVICE, "GET", "/device-template/datatype")
                self._types = {
                    str(i.get("name", "")).upper(): (
                        _guid(i.get("guid")),
                        frozenset(aggregates_from_wire(i["aggregates"]))
                        if "aggregates" in i else None)
                    for i in env.items()}
            return self._types

    def _attribute_body(self, template_guid: str, attribute: DesiredAttribute) -> dict[str, Any]:
        data_type = attribute.data_type.upper()
        type_guid = self.data_types().get(data_type)
        if type_guid is None:
            raise ApiError(f"attribute '{attribute.name}': data type {data_type} is not "
                           "offered by this account (GET /device-template/datatype)")
        return attribute_body(template_guid, attribute, type_guid)

    def create_attribute(self, template_guid: str, attribute: DesiredAttribute) -> str:
        env = self.session.call(SERVICE, "POST", "/template-attribute",
                                json_body=self._attribute_body(template_guid, attribute))
        return _guid(_new_id(env.first()))

    def update_attribute(self, guid: str, template_guid: str,
                         attribute: DesiredAttribute) -> None:
        self.session.call(SERVICE, "PUT", f"/template-attribute/{guid}",
                          json_body=self._attribute_body(template_guid, attribute))

    def delete_attribute(self, guid: str) -> None:
        self.session.call(SERVICE, "DELETE", f"/template-attribute/{guid}")

    def create_command(self, template_guid: str, command: DesiredCommand) -> str:
        env = self.session.call(SERVICE, "POST", "/template-command",
                                json_body=command_body(template_guid, command))
        return _guid(_new_id(env.first()))

    def update_command(self, guid: str, template_guid: str, command: DesiredCommand) -> None:
        self.session.call(SERVICE, "PUT", f"/template-command/{guid}",
                          json_body=command_body(template_guid, command))

    def delete_command(self, guid: str) -> None:
        self.session.call(SERVICE, "DELETE", f"/template-command/{guid}")
