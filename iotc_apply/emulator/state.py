"""The emulated IoTConnect account: every rule of the real service, in plain Python.

No Flask here (moto's `models.py`): each public method is one API operation; it validates the
request the way the real service does, reads and writes the store inside one transaction, and
returns records (dicts) or raises an `EmulatorError`. The routes shape records into wire items
(`views.py`). Where public material leaves a behaviour open, the stricter documented variant is
chosen and marked `ASSUMPTION:` so it can be found and revisited. Assumptions that span the
module: natural keys (template code, DUID, firmware name, attribute and command names) are
unique case-insensitively; the `error[].param` codes other than the three observed ones
(DeviceTemplateNameAlreadyExists, UniqueIdAlreadyExists, TemplateAlreadyAttachedWithFirmware)
are invented, in the same style; request validation failures answer 412.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from . import tokens
from .errors import Conflict, NotFound, PreconditionFailed, ServerError, Unauthorized
from .store import Record, Store

TEMPLATE_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,9}$")
FIRMWARE_NAME_RE = re.compile(r"^[A-Z0-9]{3,10}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)*$")
ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Auth-type codes the official client knows (authtype.py): CA-signed, self-signed, TPM,
# symmetric key, CA-signed individual. ASSUMPTION: the AZ-only codes 1, 6, 8 are refused.
AUTH_TYPES = {2, 3, 4, 5, 7}
CERT_AUTH_TYPES = {2, 3, 7}
SELF_SIGNED = 3
CA_INDIVIDUAL = 7
DATA_TYPES = ("INTEGER", "DECIMAL", "NUMBER", "LONG", "STRING", "BOOLEAN", "BIT", "OBJECT",
              "DATE", "DATETIME", "TIME", "LATLONG")
FILE_MODULES = ("deviceimage", "companylogo", "firmware", "userprofile", "importbatch",
                "solutionimage", "devicecertificate", "custom", "module", "widgetimage",
                "deviceupdate", "ggcomponentartifact", "ggcomponentrecipe")
DEVICE_SORTABLE = ("uniqueid", "lastconnection", "lastcommunication")


@dataclass(frozen=True)
class Account:
    """Seed data: the company, its solution key and environment, and the login user."""

    instance: str = "avnetpoc"
    company_name: str = "Emulated Company"
    cpid: str = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    solution_key: str = "ZW11bGF0b3Itc29sdXRpb24ta2V5"
    env: str = "poc"
    pf: str = "aws"
    dedicated: bool = False
    user_email: str = "admin@example.com"
    user_password: str = "Emulator!234"
    root_entity: str = "Emulated Company"
    child_entities: tuple[str, ...] = ("Plant-A", "Plant-B")


@dataclass
class Limits:
    """Knobs on the service's behaviour that tests turn."""

    token_lifetime: int = 86400
    max_page_size: int | None = None
    guid_seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def iso(ts: float) -> str:
    """Response date-time format: ISO-8601 UTC with milliseconds and `Z`."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _require(value: Any, what: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PreconditionFailed(f"{what} is required.", param=what)
    return value


def _page(pairs: dict[str, Any], cap: int | None) -> tuple[int, int]:
    """pageNumber/pageSize as the service reads them; pageNumber < 1 is an HTTP 500."""
    try:
        number = int(pairs.get("pageNumber") or 1)
        size = int(pairs.get("pageSize") or 10)
    except (TypeError, ValueError) as exc:
        raise PreconditionFailed("pageNumber and pageSize must be integers.") from exc
    if number < 1:
        raise ServerError("An error occurred while processing your request.")
    if size < 1:
        raise PreconditionFailed("pageSize must be greater than zero.", param="pageSize")
    if cap is not None:
        size = min(size, cap)
    return number, size


class EmulatorState:
    """One IoTConnect company account, persisted in a `Store`."""

    def __init__(self, store: Store, account: Account | None = None,
                 limits: Limits | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.account = account or Account()
        self.limits = limits or Limits()
        self.clock = clock
        self._rng = random.Random(self.limits.guid_seed) if self.limits.guid_seed is not None \
            else None
        with self.store.transaction():
            if self.store.meta("seeded") is None:
                self._seed()

    # -- plumbing -------------------------------------------------------------------------

    def new_guid(self) -> str:
        if self._rng is not None:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4)).upper()
        return str(uuid.uuid4()).upper()

    def now(self) -> str:
        return iso(self.clock())

    def _secret(self) -> bytes:
        return bytes.fromhex(self.store.meta("jwt_secret") or "")

    def reset(self) -> None:
        """Forget everything and seed again (the control endpoint)."""
        with self.store.transaction():
            self.store.wipe()
            self._seed()

    def _seed(self) -> None:
        acc = self.account
        self.store.set_meta("seeded", "1")
        self.store.set_meta("jwt_secret", secrets.token_hex(32))
        for key, value in (("company_guid", self.new_guid()), ("solution_guid", self.new_guid()),
                           ("role_guid", self.new_guid())):
            self.store.set_meta(key, value)
        root = self._insert_entity(acc.root_entity, None)
        for child in acc.child_entities:
            self._insert_entity(child, root["guid"])
        user = {
            "guid": self.new_guid(), "userId": acc.user_email, "firstName": "Emulator",
            "lastName": "Admin", "roleGuid": self.store.meta("role_guid"), "roleName": "Admin",
            "entityGuid": root["guid"], "isActive": True, "contactNo": None,
            "passwordHash": hashlib.sha256(acc.user_password.encode()).hexdigest(),
            "createdDate": self.now(),
        }
        self.store.insert("user", user, nkey=acc.user_email)
        for name in DATA_TYPES:
            guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"iotconnect:datatype:{name}")).upper()
            self.store.insert("datatype", {"guid": guid, "name": name}, nkey=name)

    def _insert_entity(self, name: str, parent: str | None, **extra: Any) -> Record:
        body = {"guid": self.new_guid(), "name": name, "parentEntityGuid": parent,
                "description": extra.get("description"), "childEntityLabel": None,
                "address": extra.get("address"), "address2": None, "city": extra.get("city"),
                "zipCode": None, "createdDate": self.now(), "updatedDate": self.now()}
        return self.store.insert("entity", body, nkey=name, parent=parent)

    # -- auth -----------------------------------------------------------------------------

    def basic_token(self) -> str:
        random_part = "".join(random.choices(string.ascii_lowercase, k=100))
        token = base64.b64encode(f"{self.account.instance}:{random_part}".encode()).decode()
        with self.store.transaction():
            self.store.insert("basictoken",
                              {"guid": hashlib.sha256(token.encode()).hexdigest().upper()})
        return token

    def login(self, authorization: str | None, solution_key: str | None,
              username: Any, password: Any) -> dict[str, Any]:
        # ASSUMPTION: the `Basic ` prefix is mandatory and the basic token must be one this
        # service issued; the solution key header must match the account's.
        if not authorization or not authorization.startswith("Basic "):
            raise Unauthorized("Authorization header with a Basic token is required.")
        issued = hashlib.sha256(authorization[6:].strip().encode()).hexdigest()
        with self.store.transaction():
            if self.store.get("basictoken", issued) is None:
                raise Unauthorized("Invalid basic token.")
            # ASSUMPTION: a basic token is good for one login attempt.
            self.store.delete("basictoken", issued.upper())
            if solution_key != self.account.solution_key:
                raise Unauthorized("User is not authorized for the given solution.")
            if not isinstance(username, str) or not isinstance(password, str) \
                    or not username or not password:
                raise Unauthorized("Username and password are required.")
            users = self.store.find("user", username)
            digest = hashlib.sha256(password.encode()).hexdigest()
            if not users or not secrets.compare_digest(users[0]["passwordHash"], digest):
                raise Unauthorized("Invalid username or password.")
            return self._issue(users[0], from_refresh=False)

    def refresh(self, refresh_token: Any) -> dict[str, Any]:
        """Rotate: the presented refresh token is spent, a new pair is issued."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise Conflict("Refresh token is required.", param="refreshtoken")
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        with self.store.transaction():
            record = self.store.get("refreshtoken", key.upper())
            if record is None:
                raise Conflict("Invalid refresh token.", param="InvalidRefreshToken")
            self.store.delete("refreshtoken", key.upper())
            user = self.store.get("user", record["userGuid"])
            if user is None:
                raise Conflict("Invalid refresh token.", param="InvalidRefreshToken")
            return self._issue(user, from_refresh=True)

    def _issue(self, user: Record, from_refresh: bool) -> dict[str, Any]:
        acc = self.account
        claims_user: dict[str, Any] = {
            "id": user["guid"], "companyId": self.store.meta("company_guid"),
            "roleId": user["roleGuid"], "roleName": user["roleName"], "cpId": acc.cpid,
            "entityGuid": user["entityGuid"], "solutionGuid": self.store.meta("solution_guid"),
            "solutionKey": acc.solution_key, "ps": False, "userId": user["userId"],
        }
        if not from_refresh:
            # Real tokens obtained through refresh lack these two claims (official client note).
            claims_user["reviewStatus"] = "Approved"
            claims_user["isCpidOptional"] = acc.dedicated
        audience = f"{acc.instance}.iotconnect.io"
        claims = {"exp": int(self.clock()) + self.limits.token_lifetime, "iss": audience,
                  "aud": audience, "user": claims_user}
        refresh = "".join(random.choices(string.ascii_lowercase, k=50))
        key = hashlib.sha256(refresh.encode()).hexdigest().upper()
        self.store.insert("refreshtoken", {"guid": key, "userGuid": user["guid"]})
        return {"token_type": "bearer", "access_token": tokens.sign(claims, self._secret()),
                "expires_in": self.limits.token_lifetime, "refresh_token": refresh,
                "status": 200}

    def authenticate(self, authorization: str | None) -> dict[str, Any]:
        """The claims of a valid Bearer token, or 401."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("Authorization has been denied for this request.")
        claims = tokens.verify(authorization[7:].strip(), self._secret(), self.clock())
        if claims is None:
            raise Unauthorized("Authorization has been denied for this request.")
        return claims

    # -- entities and users -----------------------------------------------------------------

    def entities(self) -> list[Record]:
        return self.store.all("entity")

    def entity(self, guid: str) -> Record:
        record = self.store.get("entity", guid)
        if record is None:
            raise Conflict("Entity not found.", param="EntityNotFound")
        return record

    def root_entity(self) -> Record:
        return next(e for e in self.store.all("entity") if e["parentEntityGuid"] is None)

    def create_entity(self, body: dict[str, Any]) -> Record:
        name = _require(body.get("name"), "name")
        parent = _require(body.get("parentEntityGuid"), "parentEntityGuid")
        with self.store.transaction():
            parent_record = self.entity(str(parent))
            # ASSUMPTION: entity names are unique in the company (case-insensitive).
            if self.store.find("entity", str(name)):
                raise Conflict("Entity name already exists.", param="EntityNameAlreadyExists")
            return self._insert_entity(str(name), parent_record["guid"],
                                       description=body.get("description"),
                                       address=body.get("address"), city=body.get("city"))

    def users(self) -> list[Record]:
        return self.store.all("user")

    def user(self, guid: str) -> Record:
        record = self.store.get("user", guid)
        if record is None:
            raise NotFound("User not found.")
        return record

    def user_by_email(self, email: str) -> Record | None:
        found = self.store.find("user", email)
        return found[0] if found else None

    # -- templates ----------------------------------------------------------------------------

    def template(self, guid: str, missing: type = NotFound) -> Record:
        record = self.store.get("template", guid)
        if record is None:
            raise missing("Device template not found.", param="DeviceTemplateNotFound")
        return record

    def template_by_code(self, code: str) -> Record:
        found = self.store.find("template", code)
        if not found:
            raise Conflict("Device template not found.", param="DeviceTemplateNotFound")
        return found[0]

    def templates(self, params: dict[str, Any]) -> tuple[list[Record], int]:
        number, size = _page(params, self.limits.max_page_size)
        where: list[tuple[str, Any]] = []
        if params.get("DeviceTemplateName"):
            where.append(("instr(lower(json_extract(body, '$.name')), ?) > 0",
                          str(params["DeviceTemplateName"]).lower()))
        if params.get("AuthType"):
            where.append(("json_extract(body, '$.authType') = ?", int(params["AuthType"])))
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
        """Quick create from the exported template JSON."""
        if not isinstance(definition, dict):
            raise PreconditionFailed("Template JSON must be an object.", param="TemplateJSON")
        code = str(_require(definition.get("code"), "code"))
        name = str(_require(definition.get("name"), "name"))
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
        props = definition.get("properties") or {}
        with self.store.transaction():
            if self.store.find("template", code):
                raise Conflict("Template code already exists.",
                               param="DeviceTemplateCodeAlreadyExists")
            if any(t["name"].lower() == name.lower() for t in self.store.all("template")):
                raise Conflict("Template name already exists.",
                               param="DeviceTemplateNameAlreadyExists")
            now = self.now()
            template = {
                "guid": self.new_guid(), "code": code, "name": name, "authType": auth_type,
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
            self.store.insert("template", template, nkey=code)
            for item in attributes:
                self._add_attribute(template["guid"], self._attribute_from_json(item), user)
            for item in commands:
                self._add_command(template["guid"], self._command_from_json(item), user)
            return template

    @staticmethod
    def _auth_type(value: Any) -> int:
        try:
            auth_type = int(value)
        except (TypeError, ValueError) as exc:
            raise PreconditionFailed("authType is required.", param="authType") from exc
        if auth_type not in AUTH_TYPES:
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
        name = str(_require(body.get("name"), "name"))
        if len(name) > 100:
            raise PreconditionFailed("Template name must be at most 100 characters.", "name")
        with self.store.transaction():
            template = self.template(guid, missing=Conflict)
            if any(t["name"].lower() == name.lower() and t["guid"] != template["guid"]
                   for t in self.store.all("template")):
                raise Conflict("Template name already exists.",
                               param="DeviceTemplateNameAlreadyExists")
            template.update(name=name, updatedDate=self.now(), updatedBy=user)
            self.store.update("template", template)

    def delete_template(self, guid: str) -> None:
        with self.store.transaction():
            template = self.template(guid, missing=Conflict)
            if self.store.count("device", template["guid"]):
                raise Conflict("Template is attached with devices.",
                               param="TemplateAttachedWithDevice")
            if self.active_firmware_of(template["guid"]) is not None:
                raise Conflict("Template is attached with firmware.",
                               param="TemplateAlreadyAttachedWithFirmware")
            for kind in ("attribute", "command"):
                for child in self.store.children(kind, template["guid"]):
                    self.store.delete(kind, child["guid"])
            self.store.delete("template", template["guid"])

    def template_stats(self, guid: str) -> dict[str, int]:
        return {"attributeCount": self.store.count("attribute", guid),
                "commandCount": self.store.count("command", guid),
                "deviceCount": self.store.count("device", guid)}

    def active_firmware_of(self, template_guid: str) -> Record | None:
        # ASSUMPTION: only a non-deprecated firmware counts as attached to its template
        # (the official live test deletes the template after deprecating its firmware).
        for fw in self.store.children("firmware", template_guid):
            if not fw["isDeprecated"]:
                return fw
        return None

    # -- attributes ---------------------------------------------------------------------------

    def data_types(self) -> list[Record]:
        return self.store.all("datatype")

    def _data_type(self, by_name: str = "", by_guid: str = "") -> Record:
        found = self.store.find("datatype", by_name) if by_name else (
            [self.store.get("datatype", by_guid)] if by_guid else [])
        if not found or found[0] is None:
            raise Conflict("Data type not found.", param="DataTypeNotFound")
        return found[0]

    def attributes(self, template_guid: str, params: dict[str, Any]) -> tuple[list[Record], int]:
        if params.get("sortBy"):
            # The official client observed the live endpoint refusing sortBy.
            raise PreconditionFailed("sortBy is not supported.", param="sortBy")
        number, size = _page(params, self.limits.max_page_size)
        with self.store.lock:
            self.template(template_guid, missing=Conflict)
            rows = self.store.children("attribute", template_guid.upper())
        return rows[(number - 1) * size:number * size], len(rows)

    def create_attribute(self, body: dict[str, Any], user: str) -> Record:
        template_guid = str(_require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        with self.store.transaction():
            template = self.template(template_guid, missing=Conflict)
            return self._add_attribute(template["guid"], body, user)

    def _add_attribute(self, template_guid: str, body: dict[str, Any], user: str) -> Record:
        name = self._attribute_name(body.get("localName"))
        dtype = self._data_type(by_guid=str(_require(body.get("dataTypeGuid"), "dataTypeGuid")))
        if self.store.find("attribute", f"{template_guid}:{name}"):
            raise Conflict(f"Attribute '{name}' already exists.",
                           param="AttributeNameAlreadyExists")
        now = self.now()
        record = {"guid": self.new_guid(), "templateGuid": template_guid, "localName": name,
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
    def _attribute_name(value: Any) -> str:
        name = str(_require(value, "localName"))
        if not ATTRIBUTE_NAME_RE.match(name) or "___" in name or len(name) > 100:
            raise PreconditionFailed(
                f"Invalid attribute name '{name}': letters, digits and at most two consecutive "
                "underscores, starting with a letter.", param="localName")
        return name

    def update_attribute(self, guid: str, body: dict[str, Any], user: str) -> None:
        with self.store.transaction():
            record = self.store.get("attribute", guid)
            if record is None:
                raise Conflict("Attribute not found.", param="AttributeNotFound")
            name = self._attribute_name(body.get("localName"))
            dtype = self._data_type(by_guid=str(_require(body.get("dataTypeGuid"),
                                                         "dataTypeGuid")))
            if record["dataTypeName"] == "OBJECT" and dtype["name"] != "OBJECT":
                raise Conflict("The data type of an OBJECT attribute cannot change.",
                               param="ObjectDataTypeCannotChange")
            nkey = f"{record['templateGuid']}:{name}"
            clash = [a for a in self.store.find("attribute", nkey) if a["guid"] != record["guid"]]
            if clash:
                raise Conflict(f"Attribute '{name}' already exists.",
                               param="AttributeNameAlreadyExists")
            record.update(localName=name, dataTypeGuid=dtype["guid"], dataTypeName=dtype["name"],
                          description=body.get("description"), unit=body.get("unit"),
                          dataValidation=body.get("dataValidation"),
                          aggregateType=list(body.get("aggregateType") or []),
                          updatedDate=self.now(), updatedBy=user)
            self.store.update("attribute", record, nkey=nkey)

    def delete_attribute(self, guid: str) -> None:
        with self.store.transaction():
            record = self.store.get("attribute", guid)
            if record is None:
                raise Conflict("Attribute not found.", param="AttributeNotFound")
            if self.store.count("attribute", record["templateGuid"]) <= 1:
                raise Conflict("A template must keep at least one attribute.",
                               param="TemplateMustHaveAttribute")
            self.store.delete("attribute", record["guid"])

    # -- commands -----------------------------------------------------------------------------

    def commands(self, template_guid: str) -> list[Record]:
        with self.store.lock:
            self.template(template_guid, missing=Conflict)
            return self.store.children("command", template_guid.upper())

    def create_command(self, body: dict[str, Any], user: str) -> Record:
        template_guid = str(_require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        with self.store.transaction():
            template = self.template(template_guid, missing=Conflict)
            return self._add_command(template["guid"], body, user)

    def _add_command(self, template_guid: str, body: dict[str, Any], user: str) -> Record:
        name, command = self._command_fields(body)
        if self.store.find("command", f"{template_guid}:{command}"):
            raise Conflict(f"Command '{command}' already exists.",
                           param="CommandAlreadyExists")
        now = self.now()
        record = {"guid": self.new_guid(), "templateGuid": template_guid, "name": name,
                  "command": command, "requiredParam": bool(body.get("requiredParam")),
                  "requiredAck": bool(body.get("requiredAck")),
                  "isOTACommand": bool(body.get("isOTACommand")), "tag": body.get("tag"),
                  "createdDate": now, "createdBy": user, "updatedDate": now}
        return self.store.insert("command", record, nkey=f"{template_guid}:{command}",
                                 parent=template_guid)

    @staticmethod
    def _command_fields(body: dict[str, Any]) -> tuple[str, str]:
        name = str(_require(body.get("name"), "name"))
        command = str(_require(body.get("command"), "command"))
        if len(name) > 100 or len(command) > 100 or not re.match(r"^[A-Za-z0-9_-]+$", command):
            raise PreconditionFailed(f"Invalid command '{command}'.", param="command")
        return name, command

    def update_command(self, guid: str, body: dict[str, Any], user: str) -> None:
        with self.store.transaction():
            record = self.store.get("command", guid)
            if record is None:
                raise Conflict("Command not found.", param="CommandNotFound")
            name, command = self._command_fields(body)
            nkey = f"{record['templateGuid']}:{command}"
            if any(c["guid"] != record["guid"] for c in self.store.find("command", nkey)):
                raise Conflict(f"Command '{command}' already exists.",
                               param="CommandAlreadyExists")
            record.update(name=name, command=command,
                          requiredParam=bool(body.get("requiredParam")),
                          requiredAck=bool(body.get("requiredAck")),
                          isOTACommand=bool(body.get("isOTACommand")),
                          updatedDate=self.now(), updatedBy=user)
            self.store.update("command", record, nkey=nkey)

    def delete_command(self, guid: str) -> None:
        with self.store.transaction():
            if self.store.get("command", guid) is None:
                raise Conflict("Command not found.", param="CommandNotFound")
            self.store.delete("command", guid.upper())

    def send_command(self, device_guid: str, body: dict[str, Any]) -> None:
        with self.store.lock:
            device = self.device(device_guid)
            command = self.store.get("command", str(body.get("commandGuid") or ""))
            if command is None or command["templateGuid"] != device["templateGuid"]:
                raise Conflict("Command not found.", param="CommandNotFound")
            if command["requiredParam"] and not body.get("parameterValue"):
                raise PreconditionFailed("parameterValue is required.", param="parameterValue")

    # -- devices ------------------------------------------------------------------------------

    def device(self, guid: str) -> Record:
        record = self.store.get("device", guid)
        if record is None:
            raise Conflict("Device not found.", param="DeviceNotFound")
        return record

    def device_by_duid(self, duid: str) -> Record:
        found = self.store.find("device", duid)
        if not found:
            raise Conflict("Device not found.", param="DeviceNotFound")
        return found[0]

    def devices(self, params: dict[str, Any]) -> list[Record]:
        """One page of `/Device`; the service reports no usable total for it."""
        number, size = _page(params, self.limits.max_page_size)
        where: list[tuple[str, Any]] = []
        if params.get("UniqueId"):
            where.append(("instr(nkey, ?) > 0", str(params["UniqueId"]).lower()))
        if params.get("TemplateGuid"):
            where.append(("parent = ?", str(params["TemplateGuid"]).upper()))
        if params.get("EntityGuid"):
            where.append(("json_extract(body, '$.entityGuid') = ?",
                          str(params["EntityGuid"]).upper()))
        status = str(params.get("Status") or "").lower()
        if status in ("active", "inactive"):
            where.append(("json_extract(body, '$.isActive') = ?", 1 if status == "active" else 0))
        with self.store.lock:
            return self.store.query("device", where, self._device_order(params.get("sortBy")),
                                    size, (number - 1) * size)

    @staticmethod
    def _device_order(sort_by: Any) -> str:
        if not sort_by:
            return "id"
        parts = str(sort_by).split()
        field_name = parts[0].lower() if parts else ""
        direction = parts[1].upper() if len(parts) == 2 else ""
        if field_name == "displayname":
            return "id"  # observed: silently ignored
        if field_name not in DEVICE_SORTABLE or direction not in ("ASC", "DESC"):
            raise PreconditionFailed(f"Invalid sortBy '{sort_by}'.", param="sortBy")
        column = "nkey" if field_name == "uniqueid" else "id"
        return f"{column} {direction}"

    def create_device(self, body: dict[str, Any]) -> tuple[Record, dict[str, int]]:
        duid = str(_require(body.get("uniqueId"), "uniqueId"))
        template_guid = str(_require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        entity_guid = str(_require(body.get("entityGuid"), "entityGuid"))
        display = str(body.get("displayName") or duid)
        with self.store.transaction():
            template = self.template(template_guid, missing=Conflict)
            self._check_duid(duid, template["authType"])
            entity = self.entity(entity_guid)
            if not self.store.count("attribute", template["guid"]):
                raise Conflict("Device template has no attributes.",
                               param="NoAttributesInTemplate")
            if self.store.find("device", duid):
                raise Conflict("Unique Id already exists.", param="UniqueIdAlreadyExists")
            cert, thumbprint = self._certificate(body.get("certificateText"), template["authType"])
            now = self.now()
            record = {"guid": self.new_guid(), "uniqueId": duid, "displayName": display[:100],
                      "templateGuid": template["guid"], "entityGuid": entity["guid"],
                      "isActive": True, "note": body.get("note"), "certificateText": cert,
                      "thumbprint": thumbprint, "createdDate": now, "updatedDate": now}
            self.store.insert("device", record, nkey=duid, parent=template["guid"])
            self._count_device(active=+1)
            return record, self._device_counts()

    def _count_device(self, active: int = 0, inactive: int = 0) -> None:
        """Running totals for the create answer's activeDeviceCount/inActiveDeviceCount."""
        counts = self._device_counts()
        self.store.set_meta("active_devices", str(counts["active"] + active))
        self.store.set_meta("inactive_devices", str(counts["inactive"] + inactive))

    def _device_counts(self) -> dict[str, int]:
        return {"active": int(self.store.meta("active_devices") or 0),
                "inactive": int(self.store.meta("inactive_devices") or 0)}

    @staticmethod
    def _check_duid(duid: str, auth_type: int) -> None:
        limit = 31 if auth_type in CERT_AUTH_TYPES else 128
        if len(duid) > limit or not DUID_RE.match(duid):
            raise PreconditionFailed(
                f"Invalid uniqueId '{duid}': at most {limit} letters, digits, '-', '_' or '.'.",
                param="uniqueId")

    def _certificate(self, pem: Any, auth_type: int) -> tuple[str | None, str | None]:
        """Parse and register the device certificate that self-signed templates require."""
        if pem is None or pem == "":
            # ASSUMPTION: CA-signed individual devices need their certificate as well.
            if auth_type in (SELF_SIGNED, CA_INDIVIDUAL):
                raise PreconditionFailed("certificateText is required for this template's "
                                         "authentication type.", param="certificateText")
            return None, None
        try:
            cert = x509.load_pem_x509_certificate(str(pem).encode())
        except ValueError as exc:
            raise PreconditionFailed("certificateText is not a valid PEM certificate.",
                                     param="InvalidCertificate") from exc
        thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
        # ASSUMPTION: a certificate can identify only one device (as in AWS IoT, where
        # registering the same certificate twice fails).
        if self.store.find("thumbprint", thumbprint):
            raise Conflict("Certificate is already in use by another device.",
                           param="CertificateAlreadyExists")
        self.store.insert("thumbprint", {"guid": thumbprint}, nkey=thumbprint)
        return str(pem), thumbprint

    def update_device(self, guid: str, body: dict[str, Any]) -> None:
        display = str(_require(body.get("displayName"), "displayName"))
        entity_guid = str(_require(body.get("entityGuid"), "entityGuid"))
        with self.store.transaction():
            device = self.device(guid)
            entity = self.entity(entity_guid)
            device.update(displayName=display[:100], entityGuid=entity["guid"],
                          note=body.get("note", device.get("note")), updatedDate=self.now())
            self.store.update("device", device)

    def set_device_status(self, guid: str, body: dict[str, Any]) -> None:
        active = body.get("isActive")
        if not isinstance(active, bool):
            raise PreconditionFailed("isActive must be a boolean.", param="isActive")
        with self.store.transaction():
            device = self.device(guid)
            if device["isActive"] == active:
                raise Conflict("Device is already in the requested state.",
                               param="DeviceAlreadyInState")
            device.update(isActive=active, updatedDate=self.now())
            self.store.update("device", device)
            self._count_device(active=1 if active else -1, inactive=-1 if active else 1)

    def delete_device(self, guid: str) -> None:
        with self.store.transaction():
            device = self.device(guid)
            if device.get("thumbprint"):
                self.store.delete("thumbprint", device["thumbprint"])
            self.store.delete("device", device["guid"])
            self._count_device(active=-1 if device["isActive"] else 0,
                               inactive=0 if device["isActive"] else -1)

    # -- firmware -----------------------------------------------------------------------------

    def firmware(self, guid: str, missing: type = NotFound) -> Record:
        record = self.store.get("firmware", guid)
        if record is None:
            raise missing("Firmware not found.", param="FirmwareNotFound")
        return record

    def firmwares(self, params: dict[str, Any]) -> tuple[list[Record], int]:
        number, size = _page(params, self.limits.max_page_size)
        include_deprecated = str(params.get("includeDeprecated", "")).lower() == "true"
        with self.store.lock:
            rows = [f for f in self.store.all("firmware")
                    if (include_deprecated or not f["isDeprecated"])
                    and self._firmware_matches(f, params)]
        return rows[(number - 1) * size:number * size], len(rows)

    def _firmware_matches(self, fw: Record, params: dict[str, Any]) -> bool:
        if params.get("Name") and fw["name"].lower() != str(params["Name"]).lower():
            return False
        if params.get("Hardware") and fw["hardware"] != params["Hardware"]:
            return False
        if params.get("searchText") and str(params["searchText"]).lower() not in \
                fw["name"].lower():
            return False
        if params.get("TemplateName"):
            template = self.store.get("template", fw["templateGuid"])
            if template is None or template["name"].lower() != str(
                    params["TemplateName"]).lower():
                return False
        return True

    def create_firmware(self, body: dict[str, Any], user: str) -> tuple[Record, Record]:
        name = str(_require(body.get("firmwareName"), "firmwareName"))
        hardware = self._version(body.get("hardware"), "hardware")
        software = self._version(body.get("software"), "software")
        template_guid = str(_require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        if not FIRMWARE_NAME_RE.match(name):
            raise PreconditionFailed(
                "Firmware name must be 3-10 upper-case letters or digits.", param="firmwareName")
        with self.store.transaction():
            template = self.template(template_guid, missing=Conflict)
            # ASSUMPTION: a deprecated firmware frees its name: the official live test creates
            # a firmware of the same name on its next run after deprecating it.
            if any(not f["isDeprecated"] for f in self.store.find("firmware", name)):
                raise Conflict("Firmware name already exists.",
                               param="FirmwareNameAlreadyExists")
            if self.active_firmware_of(template["guid"]) is not None:
                raise Conflict("Template is already attached with a firmware.",
                               param="TemplateAlreadyAttachedWithFirmware")
            now = self.now()
            fw = {"guid": self.new_guid(), "name": name, "hardware": hardware,
                  "templateGuid": template["guid"], "description": body.get("FirmwareDescription"),
                  "isDeprecated": False, "createdDate": now, "createdBy": user,
                  "updatedDate": now, "updatedBy": user}
            self.store.insert("firmware", fw, nkey=name, parent=template["guid"])
            upgrade = self._add_upgrade(fw, software, body.get("firmwareUpgradeDescription"), user)
            return fw, upgrade

    @staticmethod
    def _version(value: Any, what: str) -> str:
        text = str(_require(value, what))
        if len(text) > 20 or not VERSION_RE.match(text):
            raise PreconditionFailed(
                f"{what} must be at most 20 characters: dot-separated letters and digits.",
                param=what)
        return text

    def update_firmware(self, guid: str, body: dict[str, Any], user: str) -> None:
        name = str(_require(body.get("firmwareName"), "firmwareName"))
        hardware = self._version(body.get("hardware"), "hardware")
        with self.store.transaction():
            fw = self.firmware(guid, missing=Conflict)
            if name != fw["name"]:
                raise Conflict("Firmware name cannot change.", param="FirmwareNameCannotChange")
            released = any(not u["isDraft"] for u in self.store.children("upgrade", fw["guid"]))
            if hardware != fw["hardware"] and released:
                raise Conflict("Hardware cannot change once an upgrade is released.",
                               param="HardwareCannotChange")
            fw.update(hardware=hardware, description=body.get("FirmwareDescription"),
                      updatedDate=self.now(), updatedBy=user)
            self.store.update("firmware", fw)

    def deprecate_firmware(self, guid: str, user: str) -> None:
        with self.store.transaction():
            fw = self.firmware(guid, missing=Conflict)
            if fw["isDeprecated"]:
                raise Conflict("Firmware is already deprecated.",
                               param="FirmwareAlreadyDeprecated")
            fw.update(isDeprecated=True, updatedDate=self.now(), updatedBy=user)
            self.store.update("firmware", fw)

    def upgrades_of(self, firmware_guid: str) -> list[Record]:
        return self.store.children("upgrade", firmware_guid)

    # -- upgrades -----------------------------------------------------------------------------

    def upgrade(self, guid: str, missing: type = NotFound) -> Record:
        record = self.store.get("upgrade", guid)
        if record is None:
            raise missing("Firmware upgrade not found.", param="FirmwareUpgradeNotFound")
        return record

    def upgrades(self, params: dict[str, Any]) -> tuple[list[Record], int]:
        kind = str(params.get("type") or "").lower()
        if kind not in ("draft", "released", "both"):
            raise PreconditionFailed("type is required: Draft, Released or both.", param="type")
        number, size = _page(params, self.limits.max_page_size)
        firmware_guid = str(params.get("firmwareguid") or "").upper()
        with self.store.lock:
            rows = self.store.children("upgrade", firmware_guid) if firmware_guid \
                else self.store.all("upgrade")
        if kind != "both":
            rows = [u for u in rows if u["isDraft"] == (kind == "draft")]
        if params.get("searchText"):
            rows = [u for u in rows if str(params["searchText"]).lower() in u["software"].lower()]
        return rows[(number - 1) * size:number * size], len(rows)

    def create_upgrade(self, body: dict[str, Any], user: str) -> Record:
        firmware_guid = str(_require(body.get("firmwareGuid"), "firmwareGuid"))
        software = self._version(body.get("software"), "software")
        with self.store.transaction():
            fw = self.firmware(firmware_guid, missing=Conflict)
            if fw["isDeprecated"]:
                raise Conflict("Firmware is deprecated.", param="FirmwareDeprecated")
            return self._add_upgrade(fw, software, body.get("description"), user)

    def _add_upgrade(self, fw: Record, software: str, description: Any, user: str) -> Record:
        if self.store.find("upgrade", f"{fw['guid']}:{software}"):
            raise Conflict("Software version already exists.",
                           param="SoftwareVersionAlreadyExists")
        now = self.now()
        record = {"guid": self.new_guid(), "firmwareGuid": fw["guid"], "software": software,
                  "description": description, "isDraft": True, "createdDate": now,
                  "createdBy": user, "updatedDate": now, "updatedBy": user}
        return self.store.insert("upgrade", record, nkey=f"{fw['guid']}:{software}",
                                 parent=fw["guid"])

    def update_upgrade(self, guid: str, body: dict[str, Any], user: str) -> None:
        software = self._version(body.get("software"), "software")
        with self.store.transaction():
            record = self.upgrade(guid, missing=Conflict)
            if not record["isDraft"]:
                raise Conflict("A released firmware upgrade cannot change.",
                               param="FirmwareUpgradeReleased")
            nkey = f"{record['firmwareGuid']}:{software}"
            if any(u["guid"] != record["guid"] for u in self.store.find("upgrade", nkey)):
                raise Conflict("Software version already exists.",
                               param="SoftwareVersionAlreadyExists")
            record.update(software=software, description=body.get("description"),
                          updatedDate=self.now(), updatedBy=user)
            self.store.update("upgrade", record, nkey=nkey)

    def publish_upgrade(self, guid: str, user: str) -> None:
        with self.store.transaction():
            record = self.upgrade(guid, missing=Conflict)
            if not record["isDraft"]:
                raise Conflict("Firmware upgrade is already released.",
                               param="FirmwareUpgradeAlreadyReleased")
            # ASSUMPTION: an upgrade without any file cannot be released.
            if not self.store.children("file", record["guid"]):
                raise Conflict("Firmware upgrade has no file.", param="FirmwareFileNotFound")
            record.update(isDraft=False, updatedDate=self.now(), updatedBy=user)
            self.store.update("upgrade", record)

    def delete_upgrade(self, guid: str, delete_single: bool) -> None:
        """ASSUMPTION: a released upgrade can be deleted while another remains (the official
        live test does it; the AZ spec forbids it)."""
        with self.store.transaction():
            record = self.upgrade(guid, missing=Conflict)
            siblings = self.store.children("upgrade", record["firmwareGuid"])
            if len(siblings) <= 1 and not (delete_single and record["isDraft"]):
                raise Conflict("The only upgrade of a firmware cannot be deleted.",
                               param="LastFirmwareUpgrade")
            for f in self.store.children("file", record["guid"]):
                self.store.delete("file", f["guid"])
            self.store.delete("upgrade", record["guid"])

    # -- files --------------------------------------------------------------------------------

    def upload_file(self, module: str, ref_guid: str, name: str, data: bytes,
                    tag: str | None) -> Record:
        module = module.lower()
        if module not in FILE_MODULES:
            raise PreconditionFailed(f"Invalid ModuleType '{module}'.", param="ModuleType")
        if module == "custom":
            raise Conflict("Custom file storage is not enabled.", param="CustomStorageDisabled")
        if not name:
            raise PreconditionFailed("fileData is required.", param="fileData")
        with self.store.transaction():
            ref = ref_guid.upper()
            if module == "firmware":
                upgrade = self.upgrade(ref, missing=Conflict)
                if not upgrade["isDraft"]:
                    raise Conflict("A released firmware upgrade cannot change.",
                                   param="FirmwareUpgradeReleased")
            record = {"guid": self.new_guid(), "module": module, "refGuid": ref, "name": name,
                      "tag": tag or hashlib.md5(data).hexdigest(), "size": len(data),
                      "createdDate": self.now()}
            self.store.insert("file", record, nkey=f"{module}:{ref}:{name}", parent=ref)
            self.store.put_blob(record["guid"], data)
            return record

    def files(self, module: str, ref_guid: str) -> list[Record]:
        with self.store.lock:
            rows = [f for f in self.store.children("file", ref_guid.upper())
                    if f["module"] == module.lower()]
        if not rows:
            raise Conflict("File not found.", param="FileNotFound")
        return rows

    def delete_file(self, module: str, guid: str) -> bool:
        """True when a file was deleted; False when there was none (answered with 204)."""
        with self.store.transaction():
            record = self.store.get("file", guid)
            if record is None or record["module"] != module.lower():
                return False
            upgrade = self.store.get("upgrade", record["refGuid"])
            if upgrade is not None and not upgrade["isDraft"]:
                raise Conflict("A released firmware upgrade cannot change.",
                               param="FirmwareUpgradeReleased")
            self.store.delete("file", record["guid"])
            return True

    def file_content(self, guid: str) -> tuple[Record, bytes] | None:
        record = self.store.get("file", guid)
        data = self.store.blob(guid.upper()) if record else None
        return (record, data) if record and data is not None else None

    # -- OTA and telemetry ----------------------------------------------------------------------

    def push_ota(self, body: dict[str, Any]) -> list[dict[str, str]]:
        upgrade_guid = str(_require(body.get("firmwareUpgradeGuid"), "firmwareUpgradeGuid"))
        if not isinstance(body.get("isForceUpdate"), bool):
            raise PreconditionFailed("isForceUpdate is required.", param="isForceUpdate")
        with self.store.transaction():
            upgrade = self.upgrade(upgrade_guid, missing=Conflict)
            fw = self.firmware(upgrade["firmwareGuid"], missing=Conflict)
            self._check_schedule(body.get("scheduledOn"))
            targets = self._ota_targets(body, fw["templateGuid"])
            if upgrade["isDraft"] and (not body.get("isTrialDraft") or body.get("target") != 3):
                raise Conflict("A draft can only be pushed to devices as a trial.",
                               param="DraftPushNotAllowed")
            if not self.store.children("file", upgrade["guid"]):
                raise Conflict("Firmware upgrade file not found.", param="FirmwareFileNotFound")
            ota = self.new_guid()
            self.store.insert("ota", {"guid": ota, "upgradeGuid": upgrade["guid"],
                                      "devices": [d["guid"] for d in targets]})
            return [{"deviceGuid": d["guid"], "otaUpdateGuid": ota} for d in targets]

    def _check_schedule(self, scheduled: Any) -> None:
        if not scheduled:
            return
        try:
            when = datetime.strptime(str(scheduled), "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=UTC)
        except ValueError as exc:
            raise PreconditionFailed("scheduledOn must be 'YYYY-MM-DD HH:mm:ss'.",
                                     param="scheduledOn") from exc
        if when.timestamp() < self.clock():
            raise Conflict("scheduledOn is in the past.", param="ScheduledOnInPast")

    def _ota_targets(self, body: dict[str, Any], template_guid: str) -> list[Record]:
        target = body.get("target")
        devices = self.store.children("device", template_guid)
        if target == 1:
            entity = self.entity(str(body.get("entityGuid") or ""))
            return [d for d in devices if d["entityGuid"] == entity["guid"]]
        if target == 3:
            wanted = {str(g).upper() for g in body.get("deviceGuids") or []}
            chosen = [d for d in devices if d["guid"] in wanted]
            if not wanted or len(chosen) != len(wanted):
                raise Conflict("Device not found.", param="DeviceNotFound")
            return chosen
        raise PreconditionFailed("target must be 1 (entity) or 3 (devices).", param="target")

    def telemetry_check(self, duid: str | None = None, guid: str | None = None) -> Record:
        """Telemetry reads are answered empty: emulated devices never send data."""
        return self.device(guid) if guid else self.device_by_duid(duid or "")

