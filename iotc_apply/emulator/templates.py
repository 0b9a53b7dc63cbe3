"""The device service's template rules: templates, data types, attributes and commands.

Plain Python, no Flask. A template cannot be deleted while devices or a live firmware use it;
that rule lives here, in the refusing operation, and asks the device and firmware services
through `DevicesOnTemplate` and `FirmwareOfTemplate` instead of reading their tables.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Protocol

from .core import Context, int32, page, require
from .errors import BadRequest, Conflict, NotFound, PreconditionFailed, absent
from .store import Record

TEMPLATE_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,9}\Z")
ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\Z")
COMMAND_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")

# Auth-type codes per platform. Source: AE template swagger, AWS `authType` doc (2 CA-signed,
# 3 self-signed, 7 CA-signed individual) and AZ (1 key, 2 CA, 3 self-signed, 4 TPM,
# 5 symmetric key, 6 DDKG, 7 bootstrap certificate, 8 PKI signature); PKG lib/authtype.py.
AUTH_TYPES = {"aws": {2, 3, 7}, "az": {1, 2, 3, 4, 5, 6, 7, 8}}
CERT_AUTH_TYPES = {2, 3, 7}
SELF_SIGNED = 3
CA_INDIVIDUAL = 7
# Source: OLD examples/sample-device-template.json and tests (STRING, DECIMAL, INTEGER),
# PKG lib/template.py:66 (STRING, NUMBER, BOOLEAN, DECIMAL, OBJECT). Nothing public shows
# any other type, so the emulator knows no other.
DATA_TYPES = ("INTEGER", "DECIMAL", "NUMBER", "STRING", "BOOLEAN", "OBJECT")
# Source: ALV AttributeCreateRequest.md (aggregateType: Min, Max, Average, Sum, Latest Value).
AGGREGATE_TYPES = ("Min", "Max", "Average", "Sum", "Latest Value")
# Source: AZ device swagger `TemplateDataType_2` (`aggregates`, `aggregateBitValue`: the
# aggregate types each data type allows; the AWS `TemplateDataType` has no such field, so
# only an Azure account shows them). ASSUMPTION: which ones no source lists; numbers take
# all five, other types only "Latest Value" (a sum or average of text means nothing).
NUMERIC_TYPES = ("INTEGER", "DECIMAL", "NUMBER")
# What every vendor sample template JSON carries, with the JSON type it has there: the
# fields common to OLD examples/sample-device-template.json, OLD tests/sample-device-
# template.json and KLIKA templates/devices/soundgener_template.JSON (quick-created against
# AWS-POC by KLIKA iot_connect_setup.py): KLIKA's has no `wireless`, attributes without
# `aggregateTypes` and an extra `isIotEdgeEnable`, and was accepted (fidelity audit C2).
SAMPLE_FIELDS: dict[str, type] = {"code": str, "name": str, "authType": int,
                                  "attributes": list, "commands": list,
                                  "messageVersion": str, "msgCode": str, "greenGrass": str,
                                  "properties": dict, "_meta": dict}
# Fields a sample may carry, with the JSON type they have where present.
OPTIONAL_SAMPLE_FIELDS: dict[str, type] = {"wireless": str}
SAMPLE_PROPERTIES: dict[str, type] = {"description": str, "dataFrequency": str,
                                      "fileSupport": bool}


class DevicesOnTemplate(Protocol):
    """What the template rules ask of the device rules."""

    def count_on_template(self, template_guid: str) -> int: ...


class FirmwareOfTemplate(Protocol):
    """What the template rules ask of the firmware rules."""

    def active_firmware_of(self, template_guid: str) -> Record | None: ...


class Templates:
    """Device templates with their attributes and commands."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.devices: DevicesOnTemplate
        self.firmware: FirmwareOfTemplate

    def bind(self, devices: DevicesOnTemplate, firmware: FirmwareOfTemplate) -> None:
        """Late binding: the device and firmware rules are built after (and on) these."""
        self.devices = devices
        self.firmware = firmware

    def seed(self) -> None:
        for name in DATA_TYPES:
            guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"iotconnect:datatype:{name}")).upper()
            record: dict[str, Any] = {"guid": guid, "name": name}
            if self.ctx.account.pf == "az":
                record["aggregates"] = list(AGGREGATE_TYPES if name in NUMERIC_TYPES
                                            else ("Latest Value",))
            self.store.insert("datatype", record, nkey=name)

    # -- templates --------------------------------------------------------------------------

    def template(self, guid: str, missing: type = NotFound) -> Record:
        """`GET /device-template/{guid}`: a missing GUID is a 404 on this read.

        Source: PKG lib/template.py:155 get_by_guid (NotFoundResponseError means absent);
        writes on a missing template answer 409 (AE template swagger).
        """
        return self.ctx.fetch("template", guid, "device template", missing)

    def lookup(self, guid: str) -> Record | None:
        """A template by GUID for other services' projections; None when it is gone."""
        return self.store.get("template", guid)

    def template_by_code(self, code: str) -> Record:
        """`GET /device-template/template-code/{code}`: missing is a 409.

        Source: PKG lib/template.py:145 get_by_template_code (ConflictResponseError = absent).
        """
        found = self.store.find("template", code)
        if not found:
            raise absent("device template")
        return found[0]

    def templates(self, params: dict[str, Any]) -> tuple[list[Record], int]:
        """`GET /device-template` with name and auth-type filters, paged, with a true count.

        Source: AE template swagger (AWS list query), PKG lib/template.py:135 query.
        """
        number, size = page(params, self.ctx.limits)
        where: list[tuple[str, Any]] = []
        if params.get("DeviceTemplateName"):
            where.append(("instr(lower(json_extract(body, '$.name')), ?) > 0",
                          str(params["DeviceTemplateName"]).lower()))
        if params.get("AuthType"):
            auth_type = int32(params["AuthType"])
            if auth_type is None:
                raise PreconditionFailed("AuthType must be an integer.", param="AuthType")
            where.append(("json_extract(body, '$.authType') = ?", auth_type))
        order = self._template_order(params.get("sortBy"))
        with self.store.lock:
            total = len(self.store.query("template", where, "id"))
            rows = self.store.query("template", where, order, size, (number - 1) * size)
        return rows, total

    @staticmethod
    def _template_order(sort_by: Any) -> str:
        if not sort_by:
            return "id"
        parts = str(sort_by).split()
        columns = {"name": "lower(json_extract(body, '$.name'))", "code": "nkey",
                   "createddate": "id"}
        if len(parts) != 2 or parts[0].lower() not in columns or parts[1].lower() not in (
                "asc", "desc"):
            raise PreconditionFailed(f"Invalid sortBy '{sort_by}'.", param="sortBy")
        return f"{columns[parts[0].lower()]} {parts[1].upper()}"

    def create_template(self, definition: Any, user: str) -> Record:
        """`POST /device-template/quick` from the exported template JSON.

        Source: OLD tests/template.py (live), AE template swagger (409 when the code or the
        name exists; param DeviceTemplateNameAlreadyExists seen in KLIKA).
        """
        self._check_sample_shape(definition)
        code = str(require(definition.get("code"), "code"))
        name = str(require(definition.get("name"), "name"))
        if not TEMPLATE_CODE_RE.match(code):
            raise PreconditionFailed(
                "Template code must be 1-10 alphanumeric characters starting with a letter.",
                param="code")
        if len(name) > 100:
            raise PreconditionFailed("Template name must be at most 100 characters.", "name")
        auth_type = self._auth_type(definition.get("authType"))
        attributes = definition.get("attributes") or []
        commands = definition.get("commands") or []
        if not isinstance(attributes, list) or not isinstance(commands, list):
            raise PreconditionFailed("attributes and commands must be lists.")
        with self.store.transaction():
            self._check_unique(code, name)
            template = self._new_template(definition, code, name, auth_type, user)
            self.store.insert("template", template, nkey=code)
            for item in attributes:
                self._add_attribute(template["guid"], self._attribute_from_json(item), user)
            for item in commands:
                self._add_command(template["guid"], self._command_from_json(item), user)
            return template

    @staticmethod
    def _check_sample_shape(definition: Any) -> None:
        """Source: the vendor samples (SAMPLE_FIELDS): every field they carry must be there,
        and a value that is not null must have the JSON type it has in them. ASSUMPTION: a
        missing field or another type is the ASP.NET model binder's 400, as for any body."""
        if not isinstance(definition, dict):
            raise BadRequest("The template JSON must be an object.")
        props = definition.get("properties")
        present = {k: v for k, v in OPTIONAL_SAMPLE_FIELDS.items() if k in definition}
        for fields, where in ((SAMPLE_FIELDS | present, definition),
                              (SAMPLE_PROPERTIES, props if isinstance(props, dict) else {})):
            for key, kind in fields.items():
                if key not in where:
                    raise BadRequest(f"The {key} field is required.")
                value = where[key]
                if value is None:
                    continue
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise BadRequest(f"The JSON value of '{key}' could not be converted to "
                                     f"{kind.__name__}.")

    def _check_unique(self, code: str, name: str) -> None:
        if self.store.find("template", code):
            raise Conflict("Template code already exists.",
                           param="DeviceTemplateCodeAlreadyExists")
        if any(t["name"].lower() == name.lower() for t in self.store.all("template")):
            raise Conflict("Template name already exists.",
                           param="DeviceTemplateNameAlreadyExists")

    def _new_template(self, definition: dict[str, Any], code: str, name: str, auth_type: int,
                      user: str) -> Record:
        props = definition.get("properties") or {}
        now = self.ctx.now()
        return {
            "guid": self.ctx.new_guid(), "code": code, "name": name, "authType": auth_type,
            "messageVersion": str(definition.get("messageVersion") or "2.1"),
            "msgCode": definition.get("msgCode"),
            "greenGrass": str(definition.get("greenGrass", "0")),
            "wireless": str(definition.get("wireless", "0")),
            "description": props.get("description"),
            "dataFrequency": str(props.get("dataFrequency", "60")),
            "fileSupport": bool(props.get("fileSupport", False)),
            "isEdgeSupport": False, "tag": None,
            "createdDate": now, "createdBy": user, "updatedDate": now, "updatedBy": user,
        }

    def _auth_type(self, value: Any) -> int:
        auth_type = int32(value)
        if auth_type is None:
            raise PreconditionFailed("authType is required.", param="authType")
        if auth_type not in AUTH_TYPES[self.ctx.account.pf]:
            raise Conflict(f"Auth type {auth_type} is not supported.", param="InvalidAuthType")
        return auth_type

    def _attribute_from_json(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise PreconditionFailed("Each attribute must be an object.", param="attributes")
        dtype = self._data_type(by_name=str(item.get("type") or ""))
        return {"localName": item.get("name"), "dataTypeGuid": dtype["guid"],
                "description": item.get("description"), "unit": item.get("unit"),
                "aggregateType": item.get("aggregateTypes") or [],
                "dataValidation": item.get("dataValidation")}

    @staticmethod
    def _command_from_json(item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise PreconditionFailed("Each command must be an object.", param="commands")
        return {"name": item.get("name"), "command": item.get("command"),
                "requiredParam": item.get("requiredParam", False),
                "requiredAck": item.get("requiredAck", False),
                "isOTACommand": item.get("isOTACommand", False)}

    def update_template(self, guid: str, body: dict[str, Any], user: str) -> None:
        """`PUT /device-template/{guid}`: only the name changes here.

        Source: AE template swagger `PUT /device-template/{templateGuid}` (name required,
        409 name exists / not found), ALV TemplateApi.
        """
        name = str(require(body.get("name"), "name"))
        if len(name) > 100:
            raise PreconditionFailed("Template name must be at most 100 characters.", "name")
        with self.store.transaction():
            template = self.template(guid, missing=Conflict)
            if any(t["name"].lower() == name.lower() and t["guid"] != template["guid"]
                   for t in self.store.all("template")):
                raise Conflict("Template name already exists.",
                               param="DeviceTemplateNameAlreadyExists")
            template.update(name=name, updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("template", template)

    def delete_template(self, guid: str) -> None:
        """`DELETE /device-template/{guid}`: refused while devices or a firmware use it.

        Source: AE template swagger (409 when attached to devices, rules or firmware),
        MCP template_delete doc. ASSUMPTION: only a non-deprecated firmware blocks it (OLD
        tests/firmware.py deletes the template after deprecating its firmware).
        """
        with self.store.transaction():
            template = self.template(guid, missing=Conflict)
            if self.devices.count_on_template(template["guid"]):
                raise Conflict("Template is attached with devices.",
                               param="TemplateAttachedWithDevice")
            if self.firmware.active_firmware_of(template["guid"]) is not None:
                raise Conflict("Template is attached with firmware.",
                               param="TemplateAlreadyAttachedWithFirmware")
            for kind in ("attribute", "command"):
                for child in self.store.children(kind, template["guid"]):
                    self.store.delete(kind, child["guid"])
            self.store.delete("template", template["guid"])

    def template_stats(self, guid: str) -> dict[str, int]:
        """Counts on the template list item. Source: AE template swagger (AWS list item)."""
        return {"attributeCount": self.attribute_count(guid),
                "commandCount": self.store.count("command", guid),
                "deviceCount": self.devices.count_on_template(guid)}

    def attribute_count(self, template_guid: str) -> int:
        return self.store.count("attribute", template_guid)

    # -- data types and attributes ------------------------------------------------------------

    def data_types(self) -> list[Record]:
        """`GET /device-template/datatype`. Source: ALV AttributeCreateRequest (dataTypeGuid
        comes from this list); the catalogue is DATA_TYPES (sourced above)."""
        return self.store.all("datatype")

    def _data_type(self, by_name: str = "", by_guid: str = "") -> Record:
        found = self.store.find("datatype", by_name) if by_name else (
            [self.store.get("datatype", by_guid)] if by_guid else [])
        if not found or found[0] is None:
            raise Conflict("Data type not found.", param="DataTypeNotFound")
        return found[0]

    def attributes(self, template_guid: str, params: dict[str, Any]) -> tuple[list[Record], int]:
        """`GET /template-attribute/{templateGuid}`: refuses sortBy; missing template 409.

        Source: PKG lib/template.py:164 get_attributes (sortBy observed refused; pageSize
        1000; ConflictResponseError means no template).
        """
        if params.get("sortBy"):
            raise PreconditionFailed("sortBy is not supported.", param="sortBy")
        number, size = page(params, self.ctx.limits)
        with self.store.lock:
            self.template(template_guid, missing=Conflict)
            rows = self.store.children("attribute", template_guid.upper())
        return rows[(number - 1) * size:number * size], len(rows)

    def create_attribute(self, body: dict[str, Any], user: str) -> Record:
        """`POST /template-attribute`. Source: ALV AttributeCreateRequest.md, AttributeApi.kt
        (409: template missing, name exists)."""
        template_guid = str(require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        with self.store.transaction():
            template = self.template(template_guid, missing=Conflict)
            return self._add_attribute(template["guid"], body, user)

    def _add_attribute(self, template_guid: str, body: dict[str, Any], user: str) -> Record:
        name = self._attribute_name(body.get("localName"))
        dtype = self._data_type(by_guid=str(require(body.get("dataTypeGuid"), "dataTypeGuid")))
        self._aggregates(body.get("aggregateType"), dtype)
        if self.store.find("attribute", f"{template_guid}:{name}"):
            raise Conflict(f"Attribute '{name}' already exists.",
                           param="AttributeNameAlreadyExists")
        now = self.ctx.now()
        record = {"guid": self.ctx.new_guid(), "templateGuid": template_guid, "localName": name,
                  "dataTypeGuid": dtype["guid"], "dataTypeName": dtype["name"],
                  "description": body.get("description"), "unit": body.get("unit"),
                  "dataValidation": body.get("dataValidation"),
                  "aggregateType": list(body.get("aggregateType") or []),
                  "sequence": self.store.count("attribute", template_guid) + 1,
                  "tag": body.get("tag"), "createdDate": now, "createdBy": user,
                  "updatedDate": now}
        return self.store.insert("attribute", record, nkey=f"{template_guid}:{name}",
                                 parent=template_guid)

    @staticmethod
    def _aggregates(value: Any, dtype: Record) -> None:
        """Source: ALV AttributeCreateRequest.md (the five aggregate types); where the data
        type lists the ones it allows (Azure, see NUMERIC_TYPES), only those."""
        if value is None:
            return
        if not isinstance(value, list) or any(a not in AGGREGATE_TYPES for a in value):
            raise PreconditionFailed(f"Invalid aggregateType {value!r}.", param="aggregateType")
        allowed = dtype.get("aggregates")
        wrong = [a for a in value if allowed is not None and a not in allowed]
        if wrong:
            raise PreconditionFailed(f"aggregateType {', '.join(wrong)} is not allowed for "
                                     f"data type {dtype['name']}.", param="aggregateType")

    @staticmethod
    def _attribute_name(value: Any) -> str:
        name = str(require(value, "localName"))
        if not ATTRIBUTE_NAME_RE.match(name) or "___" in name or len(name) > 100:
            raise PreconditionFailed(
                f"Invalid attribute name '{name}': letters, digits and at most two consecutive "
                "underscores, starting with a letter.", param="localName")
        return name

    def update_attribute(self, guid: str, body: dict[str, Any], user: str) -> None:
        """`PUT /template-attribute/{guid}`; an OBJECT's data type cannot change.

        Source: ALV AttributeUpdateRequest.md, AttributeApi.kt (409 cases).
        """
        with self.store.transaction():
            record = self.ctx.fetch("attribute", guid, "attribute")
            name = self._attribute_name(body.get("localName"))
            dtype = self._data_type(by_guid=str(require(body.get("dataTypeGuid"),
                                                        "dataTypeGuid")))
            self._aggregates(body.get("aggregateType"), dtype)
            if record["dataTypeName"] == "OBJECT" and dtype["name"] != "OBJECT":
                raise Conflict("The data type of an OBJECT attribute cannot change.",
                               param="ObjectDataTypeCannotChange")
            nkey = f"{record['templateGuid']}:{name}"
            if any(a["guid"] != record["guid"] for a in self.store.find("attribute", nkey)):
                raise Conflict(f"Attribute '{name}' already exists.",
                               param="AttributeNameAlreadyExists")
            record.update(localName=name, dataTypeGuid=dtype["guid"], dataTypeName=dtype["name"],
                          description=body.get("description"), unit=body.get("unit"),
                          dataValidation=body.get("dataValidation"),
                          aggregateType=list(body.get("aggregateType") or []),
                          updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("attribute", record, nkey=nkey)

    def delete_attribute(self, guid: str) -> None:
        """`DELETE /template-attribute/{guid}`: a template keeps at least one attribute.

        Source: ALV AttributeApi.kt (409: not found, last attribute).
        """
        with self.store.transaction():
            record = self.ctx.fetch("attribute", guid, "attribute")
            if self.store.count("attribute", record["templateGuid"]) <= 1:
                raise Conflict("A template must keep at least one attribute.",
                               param="TemplateMustHaveAttribute")
            self.store.delete("attribute", record["guid"])

    # -- commands -----------------------------------------------------------------------------

    def commands(self, template_guid: str) -> list[Record]:
        """`GET /template-command/{templateGuid}`: missing template 409.

        Source: PKG lib/command.py:28 get_all (ConflictResponseError means none).
        """
        with self.store.lock:
            self.template(template_guid, missing=Conflict)
            return self.store.children("command", template_guid.upper())

    def command(self, guid: str) -> Record | None:
        """One command by GUID, for the device service's send rule."""
        return self.store.get("command", guid)

    def create_command(self, body: dict[str, Any], user: str) -> Record:
        """`POST /template-command`. Source: ALV CommandCreateRequest.md (409: template
        missing, command already exists)."""
        template_guid = str(require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        with self.store.transaction():
            template = self.template(template_guid, missing=Conflict)
            return self._add_command(template["guid"], body, user)

    def _add_command(self, template_guid: str, body: dict[str, Any], user: str) -> Record:
        name, command = self._command_fields(body)
        if self.store.find("command", f"{template_guid}:{command}"):
            raise Conflict(f"Command '{command}' already exists.", param="CommandAlreadyExists")
        now = self.ctx.now()
        record = {"guid": self.ctx.new_guid(), "templateGuid": template_guid, "name": name,
                  "command": command, "requiredParam": bool(body.get("requiredParam")),
                  "requiredAck": bool(body.get("requiredAck")),
                  "isOTACommand": bool(body.get("isOTACommand")), "tag": body.get("tag"),
                  "createdDate": now, "createdBy": user, "updatedDate": now}
        return self.store.insert("command", record, nkey=f"{template_guid}:{command}",
                                 parent=template_guid)

    @staticmethod
    def _command_fields(body: dict[str, Any]) -> tuple[str, str]:
        name = str(require(body.get("name"), "name"))
        command = str(require(body.get("command"), "command"))
        if len(name) > 100 or len(command) > 100 or not COMMAND_RE.match(command):
            raise PreconditionFailed(f"Invalid command '{command}'.", param="command")
        return name, command

    def update_command(self, guid: str, body: dict[str, Any], user: str) -> None:
        """`PUT /template-command/{guid}`. Source: ALV CommandUpdateRequest.md."""
        with self.store.transaction():
            record = self.ctx.fetch("command", guid, "command")
            name, command = self._command_fields(body)
            nkey = f"{record['templateGuid']}:{command}"
            if any(c["guid"] != record["guid"] for c in self.store.find("command", nkey)):
                raise Conflict(f"Command '{command}' already exists.",
                               param="CommandAlreadyExists")
            record.update(name=name, command=command,
                          requiredParam=bool(body.get("requiredParam")),
                          requiredAck=bool(body.get("requiredAck")),
                          isOTACommand=bool(body.get("isOTACommand")),
                          updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("command", record, nkey=nkey)

    def delete_command(self, guid: str) -> None:
        """`DELETE /template-command/{guid}`. Source: AE/ALV command swagger (409 missing)."""
        with self.store.transaction():
            if self.store.get("command", guid) is None:
                raise absent("command")
            self.store.delete("command", guid.upper())
