"""Firmware, firmware upgrades (firmware service) and files (file service).

Tolerates the documented variants: `Upgrades` as a list or as `{"Upgrade": [...]}`,
`createdby`/`createdBy`, `firmwareguid`/`firmwareGuid`, `newId`/`newid`, 204 or 409 for an
empty file list, 204 for deleting a missing file. May import: `model`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..model import LiveFile, LiveFirmware, LiveOtaItem, LiveUpgrade
from .errors import ABSENT, ApiError, Conflict
from .session import ApiSession
from .session import guid_of as _guid


def file_from_wire(item: dict[str, Any]) -> LiveFile:
    return LiveFile(guid=_guid(item.get("guid")), name=str(item.get("name") or ""),
                    tag=item.get("tag"), url=item.get("file") or item.get("url"))


def upgrade_from_wire(item: dict[str, Any]) -> LiveUpgrade:
    urls = item.get("urls") if isinstance(item.get("urls"), list) else []
    return LiveUpgrade(
        guid=_guid(item.get("guid")), version=str(item.get("software") or ""),
        draft=str(item.get("isDraft") or "").lower() != "released",
        description=item.get("description") or item.get("firmwareUpgradeDescription"),
        files=tuple(LiveFile(guid="", name=str(u.get("name") or ""), tag=u.get("tag"),
                             url=u.get("url")) for u in urls if isinstance(u, dict)))


def firmware_from_wire(item: dict[str, Any]) -> LiveFirmware:
    raw = item.get("Upgrades", item.get("upgrades"))
    if isinstance(raw, dict):
        raw = raw.get("Upgrade")  # the AWS service nests the list one level deeper
    upgrades = tuple(upgrade_from_wire(u) for u in raw if isinstance(u, dict)) \
        if isinstance(raw, list) else None
    return LiveFirmware(
        guid=_guid(item.get("guid")), name=str(item.get("name") or ""),
        hardware=str(item.get("hardware") or ""),
        template_guid=_guid(item.get("deviceTemplateGuid")),
        template_code=item.get("deviceTemplateCode"),
        deprecated=bool(item.get("isDeprecated")),
        description=item.get("description") or item.get("firmwareDescription") or None,
        upgrades=upgrades, created=item.get("createdDate") or None)


class FirmwareClient:
    """`/Firmware` and `/firmware-upgrade`."""

    def __init__(self, session: ApiSession) -> None:
        self.session = session

    def list(self, include_deprecated: bool = True, page_size: int = 100) -> \
            Iterator[LiveFirmware]:
        params = {"includeDeprecated": "true" if include_deprecated else "false"}
        for item in self.session.pages("firmware", "/Firmware", params, page_size=page_size):
            yield firmware_from_wire(item)

    def get(self, guid: str) -> LiveFirmware | None:
        """The firmware with its upgrades (and their file URLs)."""
        try:
            item = self.session.call("firmware", "GET", f"/Firmware/{guid}").first()
        except ABSENT:
            return None
        return firmware_from_wire(item) if item else None

    def get_by_name(self, name: str, include_deprecated: bool = True) -> LiveFirmware | None:
        params = {"Name": name, "includeDeprecated": "true" if include_deprecated else "false"}
        env = self.session.call("firmware", "GET", "/Firmware", params=params, ok=(200, 204))
        found = sorted((firmware_from_wire(i) for i in env.items()
                        if str(i.get("name", "")).lower() == name.lower()),
                       key=lambda f: f.deprecated)  # the firmware in use before deprecated ones
        return found[0] if found else None

    def create(self, template_guid: str, name: str, hardware: str, version: str,
               description: str | None = None,
               upgrade_description: str | None = None) -> tuple[str, str]:
        """Create a firmware and its first (draft) upgrade; returns both GUIDs."""
        body: dict[str, Any] = {"deviceTemplateGuid": template_guid, "firmwareName": name,
                                "hardware": hardware, "software": version}
        if description is not None:
            body["FirmwareDescription"] = description
        if upgrade_description is not None:
            body["firmwareUpgradeDescription"] = upgrade_description
        item = self.session.call("firmware", "POST", "/Firmware", json_body=body).first() or {}
        return _guid(item.get("newId") or item.get("newid")), _guid(item.get(
            "firmwareUpgradeGuid"))

    def update(self, guid: str, name: str, hardware: str, description: str | None) -> None:
        self.session.call("firmware", "PUT", f"/Firmware/{guid}",
                          json_body={"firmwareName": name, "hardware": hardware,
                                     "FirmwareDescription": description})

    def deprecate(self, guid: str) -> None:
        """Deprecate; a refusal is success when a read shows it deprecated or gone."""
        try:
            self.session.call("firmware", "PUT", f"/Firmware/{guid}/deprecate")
        except ABSENT:
            current = self.get(guid)
            if current is not None and not current.deprecated:
                raise

    def upgrades(self, firmware_guid: str, page_size: int = 100) -> Iterator[LiveUpgrade]:
        params = {"firmwareguid": firmware_guid, "type": "both"}
        for item in self.session.pages("firmware", "/firmware-upgrade", params,
                                       page_size=page_size):
            yield upgrade_from_wire(item)

    def get_upgrade(self, guid: str) -> LiveUpgrade | None:
        try:
            item = self.session.call("firmware", "GET", f"/firmware-upgrade/{guid}").first()
        except ABSENT:
            return None
        return upgrade_from_wire(item) if item else None

    def create_upgrade(self, firmware_guid: str, version: str,
                       description: str | None = None) -> str:
        body: dict[str, Any] = {"firmwareGuid": firmware_guid, "software": version}
        if description is not None:
            body["description"] = description
        item = self.session.call("firmware", "POST", "/firmware-upgrade",
                                 json_body=body).first() or {}
        return _guid(item.get("newId") or item.get("newid"))

    def update_upgrade(self, guid: str, firmware_guid: str, version: str,
                       description: str | None) -> None:
        self.session.call("firmware", "PUT", f"/firmware-upgrade/{guid}",
                          json_body={"firmwareGuid": firmware_guid, "software": version,
                                     "description": description})

    def publish(self, guid: str) -> None:
        """Publish a draft and wait until a read shows it released.

        The service answers "publish process started" (AZ firmware swagger): the upgrade may
        read as a draft for a while, so it is polled every PROCESS_POLL seconds for up to
        `process_wait`; past that, ProcessPending says it is still processing. A 409 (a
        publish already released or in process) waits the same way: released is success.
        """
        try:
            self.session.call("firmware", "PUT", f"/firmware-upgrade/{guid}/publish")
        except Conflict:
            current = self.get_upgrade(guid)
            if current is None:
                raise
            if not current.draft:
                return
        deadline = time.monotonic() + self.session.settings.process_wait
        while True:
            current = self.get_upgrade(guid)
            if current is not None and not current.draft:
                return
            if time.monotonic() >= deadline:
                raise ProcessPending(
                    f"the service accepted the publish, but the upgrade still reads as a draft "
                    f"after {self.session.settings.process_wait:g} s (IOTC_PROCESS_WAIT): still "
                    "processing; run 'iotc plan' later", "PUT",
                    f"/firmware-upgrade/{guid}/publish")
            time.sleep(PROCESS_POLL)

    def delete_upgrade(self, guid: str) -> None:
        self.session.call("firmware", "DELETE", f"/firmware-upgrade/{guid}")


    # -- OTA: an upgrade onto devices ------------------------------------------------------

    def push_ota(self, upgrade_guid: str, device_guids: list[str]) -> list[tuple[str, str]]:
        """`POST /ota-update` to a list of devices (target 3), now: (device GUID, OTA GUID)
        per device the answer names (one item per device: the official client's
        `get_one()` on it is its known defect). Released upgrades only: a draft would need
        `isTrialDraft`, which rollouts never send."""
        body = {"firmwareUpgradeGuid": upgrade_guid, "isForceUpdate": False, "target": 3,
                "deviceGuids": device_guids}
        envelope = self.session.call("firmware", "POST", "/ota-update", json_body=body)
        return [(_guid(i.get("deviceGuid")), _guid(i.get("otaUpdateGuid")))
                for i in envelope.items()]

    def ota_updates(self, page_size: int = 100) -> Iterator[tuple[str, str]]:
        """Every OTA update sent: (its GUID, the upgrade's GUID)."""
        for item in self.session.pages("firmware", "/ota-update", {}, page_size=page_size):
            yield _guid(item.get("guid")), _guid(item.get("firmwareUpgradeGuid"))

    def ota_items(self, ota_guid: str) -> tuple[LiveOtaItem, ...]:
        """The devices of one OTA update with their statuses (AZ swagger)."""
        envelope = self.session.call("firmware", "GET", f"/ota-update/{ota_guid}",
                                     ok=(200, 204))
        return tuple(LiveOtaItem(ota_guid, _guid(i.get("deviceGuid")),
                                 str(i.get("status") or "").lower(),
                                 str(i.get("updatedDate") or "") or None)
                     for i in envelope.items())


PROCESS_POLL = 1.0  # seconds between reads of a process the service runs (publish)


class ProcessPending(ApiError):
    """The service accepted a change that it completes later, and it has not yet."""


class FilesClient:
    """`/File`: uploads tagged with their MD5 so a later read can tell if they changed."""

    def __init__(self, session: ApiSession) -> None:
        self.session = session

    def upload(self, module: str, ref_guid: str, name: str, content: bytes,
               tag: str | None = None) -> LiveFile:
        form = {"fileRefGuid": ref_guid, "ModuleType": module,
                "Tag": tag or hashlib.md5(content).hexdigest()}
        env = self.session.call("file", "POST", "/File", data=form,
                                files={"fileData": (name, content, "application/octet-stream")})
        return file_from_wire(env.first() or {})

    def list(self, module: str, ref_guid: str) -> tuple[LiveFile, ...]:
        try:
            env = self.session.call("file", "GET", f"/File/{module}/{ref_guid}", ok=(200, 204))
        except ABSENT:
            return ()
        data = env.data if isinstance(env.data, dict) else {}
        rows = data.get("fileData") or []
        return tuple(file_from_wire(r) for r in rows if isinstance(r, dict))

    def delete(self, module: str, guid: str) -> None:
        self.session.call("file", "DELETE", f"/File/{module}/{guid}", ok=(200, 204))

    def download(self, url: str, into: Path) -> tuple[Path, str]:
        """A file's content from the signed URL a listing gave, streamed into a temp file in
        `into`: its path and MD5 (not an API call: the URL is the credential, so no
        Authorization header is sent to the storage behind it)."""
        return self.session.download(url, into)
