"""Devices (device service), entities and users (user service).

Device listings page through `/Device`, whose `count` is -1: they end on an empty page.
List items name the entity but not its GUID; the detail read carries both.
May import: `model`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..model import LiveDevice, LiveEntity, LiveUser
from .errors import ABSENT, Conflict, NotFound
from .session import ApiSession
from .session import guid_of as _guid


@dataclass(frozen=True)
class RegisteredCertificate:
    """A device's registered certificate as the service shows it: PEM, thumbprint or both."""

    pem: str | None
    thumbprint: str | None


def device_from_wire(item: dict[str, Any]) -> LiveDevice:
    """A listed device (100,000 of them in a big plan: positional, lookups once)."""
    get = item.get
    connected = get("isConnected")
    seen = get("lastConnection") or get("lastActivityDate") or get("lastactivityDate")
    return LiveDevice(
        _guid(get("guid")), str(get("uniqueId") or ""), str(get("displayName") or ""),
        _guid(get("deviceTemplateGuid")), bool(get("isActive")), get("entityName"),
        _guid(get("entityGuid")) or None,
        # PKG lib/device.py:37-39 (isConnected, lastConnection); AZ DeviceInformation
        # (lastActivityDate); a listing without them says nothing, never "offline"
        connected if isinstance(connected, bool) else None,
        str(seen) if seen else None,
        # ALV Fixtures.kt list item `firmwareupgradeGuid`; AZ DeviceInformation's spelling
        _guid(get("firmwareUpgradeGuid") or get("firmwareupgradeGuid")) or None)


class DevicesClient:
    """`/Device`."""

    def __init__(self, session: ApiSession) -> None:
        self.session = session

    def list(self, template_guid: str | None = None, page_size: int = 100,
             expect: int | None = None) -> Iterator[LiveDevice]:
        """Devices (of one template); `expect`, its `deviceCount`, lets pages come in
        parallel (a hint only: the listing still ends on an empty page)."""
        params = {"TemplateGuid": template_guid} if template_guid else {}
        for item in self.session.pages("device", "/Device", params, page_size=page_size,
                                       expect=expect):
            yield device_from_wire(item)

    def get_by_duid(self, duid: str) -> LiveDevice | None:
        return self._one(f"/Device/uniqueId/{duid}")

    def get(self, guid: str) -> LiveDevice | None:
        return self._one(f"/Device/{guid}")

    def _one(self, path: str) -> LiveDevice | None:
        try:
            item = self.session.call("device", "GET", path).first()
        except ABSENT:
            return None
        return device_from_wire(item) if item else None

    def create(self, template_guid: str, duid: str, display_name: str, entity_guid: str,
               certificate_pem: str | None = None) -> str:
        """Register a device; returns its GUID (the answer's `newid`, lower-case i)."""
        body: dict[str, Any] = {"deviceTemplateGuid": template_guid, "uniqueId": duid,
                                "displayName": display_name, "entityGuid": entity_guid}
        if certificate_pem:
            body["certificateText"] = certificate_pem
        item = self.session.call("device", "POST", "/Device", json_body=body).first() or {}
        return _guid(item.get("newid") or item.get("newId"))

    def registered_certificate(self, guid: str) -> RegisteredCertificate | None:
        """What the service shows of the certificate a device was registered with, where a
        source shows a way to read it: on Azure `GET /device/{guid}/self-signed-certificate`
        (AE-orig swagger; its PEM or its SHA-1 `primaryThumbprint`). No source shows one on
        AWS (the device detail has no `certificateText`): None, and the caller says it could
        not verify."""
        if self.session.settings.pf != "az":
            return None
        try:
            env = self.session.call("device", "GET", f"/device/{guid}/self-signed-certificate")
        except ABSENT:
            return None
        item = env.first() or (env.data if isinstance(env.data, dict) else {})
        pem = item.get("certificateText") or item.get("certificate")
        thumb = item.get("primaryThumbprint") or item.get("thumbprint")
        if not pem and not thumb:
            return None
        return RegisteredCertificate(str(pem) if pem else None,
                                     str(thumb).upper() if thumb else None)

    def update(self, guid: str, duid: str, display_name: str, entity_guid: str) -> None:
        """Rename or move a device, keeping everything else it has.

        Whether `PUT /Device/{guid}` merges or replaces the record no source shows, and the
        AWS swagger marks `videoStreamResource` and `autoStartVideoStream` required. So the
        current record is read (by DUID: `GET /Device/uniqueId/{duid}` is the lookup live
        code uses) and sent whole with the two changes: a rename never wipes the device's
        note or properties, whichever the service does.
        """
        current = self.session.call("device", "GET", f"/Device/uniqueId/{duid}").first() or {}
        properties = [{"guid": p.get("guid"), "value": p.get("value")}
                      for p in current.get("properties") or []
                      if isinstance(p, dict) and p.get("guid")]
        body: dict[str, Any] = {
            "displayName": display_name, "entityGuid": entity_guid,
            "note": current.get("note"), "properties": properties,
            "videoStreamResource": current.get("videoStreamResource") or "",
            "autoStartVideoStream": bool(current.get("autoStartVideoStream"))}
        self.session.call("device", "PUT", f"/Device/{guid}", json_body=body)

    def set_active(self, guid: str, duid: str, active: bool) -> None:
        """Activate or deactivate; already being in that state is success. The check after
        a 409 reads by DUID (`GET /Device/uniqueId/{duid}`, seen live): the AWS swagger's
        `/Device/{guid}` block has no GET, and a missing route must never read as absent."""
        try:
            self.session.call("device", "PUT", f"/Device/{guid}/status",
                              json_body={"isActive": active})
        except Conflict:
            current = self.get_by_duid(duid)
            if current is None or current.active != active:
                raise

    def delete(self, guid: str) -> None:
        self.session.call("device", "DELETE", f"/Device/{guid}")


class EntitiesClient:
    """`/Entity`: no paging, no filters; names are matched client-side."""

    def __init__(self, session: ApiSession) -> None:
        self.session = session

    def list(self) -> list[LiveEntity]:
        env = self.session.call("user", "GET", "/Entity", ok=(200, 204))
        return [LiveEntity(_guid(i.get("guid")), str(i.get("name") or ""),
                           _guid(i.get("parentEntityGuid")) or None) for i in env.items()]

    def get(self, guid: str) -> LiveEntity | None:
        try:
            item = self.session.call("user", "GET", f"/Entity/{guid}").first()
        except ABSENT:
            return None
        if not item:
            return None
        return LiveEntity(_guid(item.get("guid")), str(item.get("name") or ""),
                          _guid(item.get("parentEntityGuid")) or None)

    def root(self) -> LiveEntity:
        roots = [e for e in self.list() if e.parent_guid is None]
        if len(roots) != 1:
            raise NotFound("GET", "/Entity", 200, f"expected one root entity, found {len(roots)}")
        return roots[0]

    def create(self, name: str, parent_guid: str) -> str:
        env = self.session.call("user", "POST", "/Entity",
                                json_body={"name": name, "parentEntityGuid": parent_guid})
        return _guid((env.first() or {}).get("entityGuid"))


class UsersClient:
    """`/User`: the single read uses `userGuid`, lists use `guid`."""

    def __init__(self, session: ApiSession) -> None:
        self.session = session

    @staticmethod
    def _user(item: dict[str, Any]) -> LiveUser:
        return LiveUser(guid=_guid(item.get("userGuid") or item.get("guid")),
                        email=str(item.get("userId") or ""), first_name=item.get("firstName"),
                        last_name=item.get("lastName"), role=item.get("roleName"),
                        entity_guid=_guid(item.get("entityGuid")) or None)

    def get(self, guid: str) -> LiveUser | None:
        try:
            item = self.session.call("user", "GET", f"/User/{guid}", ok=(200, 204)).first()
        except ABSENT:
            return None
        return self._user(item) if item else None

    def by_email(self, email: str) -> LiveUser | None:
        try:
            item = self.session.call("user", "GET", f"/User/{email}/availability",
                                     ok=(200, 204)).first()
        except ABSENT:
            return None
        return self.get(_guid(item.get("guid"))) if item else None

    def list(self, page_size: int = 100) -> Iterator[LiveUser]:
        for item in self.session.pages("user", "/User", page_size=page_size):
            yield self._user(item)
