"""The firmware service's rules: firmware, upgrades, and OTA pushes.

Plain Python, no Flask. Asks the template rules for a firmware's template, the device rules
for an OTA's targets and the file rules for an upgrade's files; it answers the template
rules' question whether a live firmware hangs on a template (`active_firmware_of`) and the
file rules' question whether an upgrade's files may change (`check_upgrade_files`).
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Any

from .accounts import Accounts
from .core import Context, iso, page, require
from .devices import Devices
from .errors import Conflict, NotFound, PreconditionFailed, absent
from .files import Files
from .store import Record
from .templates import Templates

FIRMWARE_NAME_RE = re.compile(r"^[A-Z0-9]{3,10}\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)*\Z")


class Firmware:
    """Firmware (one live per template), their upgrades, and OTA pushes."""

    def __init__(self, ctx: Context, templates: Templates, devices: Devices, files: Files,
                 accounts: Accounts) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.templates = templates
        self.devices = devices
        self.files = files
        self.accounts = accounts
        files.register_owner("firmware", self.check_upgrade_files)

    # -- firmware -----------------------------------------------------------------------------

    def firmware(self, guid: str, missing: type = NotFound) -> Record:
        """`GET /Firmware/{guid}`: a missing GUID is a 404 on this read.

        Source: PKG lib/firmware.py:128 get_by_guid (NotFoundResponseError means absent).
        """
        return self.ctx.fetch("firmware", guid, "firmware", missing)

    def active_firmware_of(self, template_guid: str) -> Record | None:
        """ASSUMPTION: only a non-deprecated firmware counts as attached to its template
        (OLD tests/firmware.py deletes the template after deprecating its firmware)."""
        for fw in self.store.children("firmware", template_guid):
            if not fw["isDeprecated"]:
                return fw
        return None

    def firmwares(self, params: dict[str, Any]) -> tuple[list[Record], int]:
        """`GET /Firmware`: deprecated ones hidden unless `includeDeprecated=true`.

        Source: PKG lib/firmware.py:111 query and :121 get_by_name (Name filter, 204 none).
        """
        number, size = page(params, self.ctx.limits)
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
            template = self.templates.lookup(fw["templateGuid"])
            if template is None or template["name"].lower() != str(
                    params["TemplateName"]).lower():
                return False
        return True

    def create_firmware(self, body: dict[str, Any], user: str) -> tuple[Record, Record]:
        """`POST /Firmware`: creates the firmware and its first (draft) upgrade.

        Source: OLD tests/firmware.py (live), PKG lib/firmware.py:139 create, KLIKA (param
        TemplateAlreadyAttachedWithFirmware: one firmware per template), AE firmware
        swagger (name 3-10). ASSUMPTION: a deprecated firmware frees its name (the live
        test re-creates the same name on its next run).
        """
        name = str(require(body.get("firmwareName"), "firmwareName"))
        hardware = self._version(body.get("hardware"), "hardware")
        software = self._version(body.get("software"), "software")
        template_guid = str(require(body.get("deviceTemplateGuid"), "deviceTemplateGuid"))
        if not FIRMWARE_NAME_RE.match(name):
            raise PreconditionFailed(
                "Firmware name must be 3-10 upper-case letters or digits.", param="firmwareName")
        with self.store.transaction():
            template = self.templates.template(template_guid, missing=Conflict)
            if any(not f["isDeprecated"] for f in self.store.find("firmware", name)):
                raise Conflict("Firmware name already exists.",
                               param="FirmwareNameAlreadyExists")
            if self.active_firmware_of(template["guid"]) is not None:
                raise Conflict("Template is already attached with a firmware.",
                               param="TemplateAlreadyAttachedWithFirmware")
            now = self.ctx.now()
            fw = {"guid": self.ctx.new_guid(), "name": name, "hardware": hardware,
                  "templateGuid": template["guid"],
                  "description": body.get("FirmwareDescription"), "isDeprecated": False,
                  "createdDate": now, "createdBy": user, "updatedDate": now, "updatedBy": user}
            self.store.insert("firmware", fw, nkey=name, parent=template["guid"])
            upgrade = self._add_upgrade(fw, software, body.get("firmwareUpgradeDescription"),
                                        user)
            return fw, upgrade

    @staticmethod
    def _version(value: Any, what: str) -> str:
        """Source: PKG lib/upgrade.py:84 _validate_version (at most 20 characters,
        dot-separated alphanumeric segments)."""
        text = str(require(value, what))
        if len(text) > 20 or not VERSION_RE.match(text):
            raise PreconditionFailed(
                f"{what} must be at most 20 characters: dot-separated letters and digits.",
                param=what)
        return text

    def update_firmware(self, guid: str, body: dict[str, Any], user: str) -> None:
        """`PUT /Firmware/{guid}`: description; hardware only while nothing is released.

        Source: AE firmware swagger (AZ) `PUT /Firmware/{firmwareGuid}`
        (`FirmwareUpdateV2Request` requires `firmwareName`, 3-10 characters; 409: the name
        exists, hardware cannot change once an upgrade is released): a rename is allowed
        (fidelity audit C10).
        """
        name = str(require(body.get("firmwareName"), "firmwareName"))
        hardware = self._version(body.get("hardware"), "hardware")
        with self.store.transaction():
            fw = self.firmware(guid, missing=Conflict)
            if name.lower() != fw["name"].lower() and any(
                    not f["isDeprecated"] for f in self.store.find("firmware", name)):
                raise Conflict("Firmware name already exists.",
                               param="FirmwareNameAlreadyExists")
            released = any(not u["isDraft"] for u in self.upgrades_of(fw["guid"]))
            if hardware != fw["hardware"] and released:
                raise Conflict("Hardware cannot change once an upgrade is released.",
                               param="HardwareCannotChange")
            fw.update(name=name, hardware=hardware, description=body.get("FirmwareDescription"),
                      updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("firmware", fw, nkey=name)

    def deprecate_firmware(self, guid: str, user: str) -> None:
        """`PUT /Firmware/{guid}/deprecate`: firmware is never deleted, only deprecated.

        Source: OLD tests/firmware.py (live), AE firmware swagger (409 already deprecated).
        """
        with self.store.transaction():
            fw = self.firmware(guid, missing=Conflict)
            if fw["isDeprecated"]:
                raise Conflict("Firmware is already deprecated.",
                               param="FirmwareAlreadyDeprecated")
            fw.update(isDeprecated=True, updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("firmware", fw)

    def upgrades_of(self, firmware_guid: str) -> list[Record]:
        return [_settled(u) for u in self.store.children("upgrade", firmware_guid)]

    # -- upgrades -----------------------------------------------------------------------------

    def upgrade(self, guid: str, missing: type = NotFound) -> Record:
        """`GET /firmware-upgrade/{guid}`: a missing GUID is a 404 on this read.

        Source: PKG lib/upgrade.py:130 get_by_guid (NotFoundResponseError means absent).
        """
        return _settled(self.ctx.fetch("upgrade", guid, "firmware upgrade", missing))

    def upgrades(self, params: dict[str, Any]) -> tuple[list[Record], int]:
        """`GET /firmware-upgrade`: `type` (draft, released or both) is required.

        Source: PKG lib/upgrade.py:120 query (type required), AE firmwareupgrade swagger.
        """
        kind = str(params.get("type") or "").lower()
        if kind not in ("draft", "released", "both"):
            raise PreconditionFailed("type is required: Draft, Released or both.", param="type")
        number, size = page(params, self.ctx.limits)
        firmware_guid = str(params.get("firmwareguid") or "").upper()
        with self.store.lock:
            rows = self.store.children("upgrade", firmware_guid) if firmware_guid \
                else self.store.all("upgrade")
        rows = [_settled(u) for u in rows]
        if kind != "both":
            rows = [u for u in rows if u["isDraft"] == (kind == "draft")]
        if params.get("searchText"):
            rows = [u for u in rows if str(params["searchText"]).lower() in u["software"].lower()]
        return rows[(number - 1) * size:number * size], len(rows)

    def create_upgrade(self, body: dict[str, Any], user: str) -> Record:
        """`POST /firmware-upgrade`: a new draft of a live firmware.

        Source: OLD tests/firmware.py (live), AE firmwareupgrade swagger (409: firmware
        missing, software version exists). ASSUMPTION: a deprecated firmware takes none.
        """
        firmware_guid = str(require(body.get("firmwareGuid"), "firmwareGuid"))
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
        now = self.ctx.now()
        record = {"guid": self.ctx.new_guid(), "firmwareGuid": fw["guid"], "software": software,
                  "description": description, "isDraft": True, "createdDate": now,
                  "createdBy": user, "updatedDate": now, "updatedBy": user}
        return self.store.insert("upgrade", record, nkey=f"{fw['guid']}:{software}",
                                 parent=fw["guid"])

    def update_upgrade(self, guid: str, body: dict[str, Any], user: str) -> None:
        """`PUT /firmware-upgrade/{guid}`: drafts only.

        Source: AE firmwareupgrade swagger (AZ) (409 when released or the version exists).
        """
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
                          updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("upgrade", record, nkey=nkey)

    def publish_upgrade(self, guid: str, user: str) -> None:
        """`PUT /firmware-upgrade/{guid}/publish`: publishing twice is a 409.

        Source: AZ firmware swagger (409 "already published"; OLD tests/firmware.py's
        "Twice-Upgrade publish test" only prints a second publish's outcome, fidelity audit
        C13); the AZ swagger answers "publish process started": with `publish_delay_s` the
        upgrade reads as a draft until the process ends. ASSUMPTION: an upgrade without any
        file cannot be released; a publish while one is in process is a 409 like a second
        publish.
        """
        with self.store.transaction():
            record = self.upgrade(guid, missing=Conflict)
            if not record["isDraft"] or record.get("releaseAt"):
                raise Conflict("Firmware upgrade is already released.",
                               param="FirmwareUpgradeAlreadyReleased")
            if not self.files.files_of(record["guid"]):
                raise Conflict("Firmware upgrade has no file.", param="FirmwareFileNotFound")
            delay = self.ctx.limits.publish_delay_s
            if delay > 0:
                record.update(releaseAt=time.time() + delay, updatedBy=user)
            else:
                record.update(isDraft=False, updatedDate=self.ctx.now(), updatedBy=user)
            self.store.update("upgrade", record)

    def delete_upgrade(self, guid: str, delete_single: bool) -> None:
        """`DELETE /firmware-upgrade/{guid}`: the only upgrade stays.

        Source: AE firmwareupgrade swagger `DELETE /firmware-upgrade/{firmwareUpgradeGuid}`
        (isDeleteSingleFirmware=true deletes a sole draft; 409 "released firmware upgrade
        can not delete"), OLD tests/firmware.py (live, under `set -e` on aws/poc and
        az/avnet: the last upgrade answers 409; :110 publishes `upgrade_2` and :121 deletes
        it, released). Live evidence beats the swagger, so a released upgrade is deleted; the
        `refuse_released_delete` knob gives the swagger's 409 (fidelity audit r2, C1).
        """
        with self.store.transaction():
            record = self.upgrade(guid, missing=Conflict)
            if not record["isDraft"] and self.ctx.limits.refuse_released_delete:
                raise Conflict("Released firmware upgrade can not delete.",
                               param="FirmwareUpgradeReleased")
            siblings = self.upgrades_of(record["firmwareGuid"])
            if len(siblings) <= 1 and not delete_single:
                raise Conflict("The only upgrade of a firmware cannot be deleted.",
                               param="LastFirmwareUpgrade")
            self.files.drop_files_of(record["guid"])
            self.store.delete("upgrade", record["guid"])

    def check_upgrade_files(self, upgrade_guid: str, must_exist: bool) -> None:
        """The file rules' question: may this upgrade's files change? Drafts only.

        ASSUMPTION: a released upgrade's files are frozen (spec: only drafts change).
        """
        record = self.store.get("upgrade", upgrade_guid)
        if record is None:
            if must_exist:
                raise absent("firmware upgrade")
            return
        if not _settled(record)["isDraft"] or record.get("releaseAt"):
            raise Conflict("A released firmware upgrade cannot change.",
                           param="FirmwareUpgradeReleased")

    # -- OTA ----------------------------------------------------------------------------------

    def push_ota(self, body: dict[str, Any]) -> list[dict[str, str]]:
        """`POST /ota-update`: drafts only as a trial to listed devices.

        Source: PKG lib/ota.py (drafts cannot go to an entity), AE ota swagger (409: upgrade
        or file missing, scheduledOn in the past).
        """
        upgrade_guid = str(require(body.get("firmwareUpgradeGuid"), "firmwareUpgradeGuid"))
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
            if not self.files.files_of(upgrade["guid"]):
                raise Conflict("Firmware upgrade file not found.", param="FirmwareFileNotFound")
            ota = self.ctx.new_guid()
            self.store.insert("ota", {"guid": ota, "upgradeGuid": upgrade["guid"],
                                      "devices": [d["guid"] for d in targets],
                                      "uniqueIds": [d["uniqueId"] for d in targets],
                                      "createdDate": self.ctx.now(), "at": self.ctx.clock()})
            return [{"deviceGuid": d["guid"], "otaUpdateGuid": ota} for d in targets]

    def ota_updates(self, pairs: dict[str, Any]) -> tuple[list[Record], int]:
        """`GET /ota-update`: the OTA updates sent, oldest first, paged.

        Source: AZ ota swagger (NET) lists the route; the item fields are ASSUMPTION:
        guid, firmwareUpgradeGuid, createdDate, deviceCount.
        """
        number, size = page(pairs, self.ctx.limits)
        rows = self.store.all("ota")
        items = [{"guid": r["guid"], "firmwareUpgradeGuid": r["upgradeGuid"],
                  "createdDate": r.get("createdDate"), "deviceCount": len(r["devices"])}
                 for r in rows]
        return items[(number - 1) * size:number * size], len(items)

    def ota_devices(self, guid: str) -> list[Record]:
        """`GET /ota-update/{guid}`: the devices of one OTA update with their status.

        Source: AZ ota swagger (statuses pending, success, failed, sent, skipped, executed,
        cancelled). ASSUMPTION: a device moves pending -> sent (half the `ota_delay_s`
        knob) -> success or failed (the whole delay), the share succeeding being
        `ota_success_rate`, decided per device and update by a seeded hash; the item fields
        deviceGuid, uniqueId, status, updatedDate.
        """
        record = self.store.get("ota", str(guid).upper())
        if record is None:
            raise absent("OTA update")
        return [self._ota_item(record, device, duid)
                for device, duid in zip(record["devices"], record.get("uniqueIds") or
                                        [None] * len(record["devices"]), strict=True)]

    def _ota_item(self, record: Record, device: str, duid: str | None) -> Record:
        limits, now = self.ctx.limits, self.ctx.clock()
        delay, sent_at = limits.ota_delay_s, float(record["at"])
        if now < sent_at + delay / 2:
            status, changed = "pending", sent_at
        elif now < sent_at + delay:
            status, changed = "sent", sent_at + delay / 2
        else:
            digest = hashlib.sha256(f"{limits.ota_seed}/{record['guid']}/{device}".encode())
            share = int.from_bytes(digest.digest()[:8], "big") / 2 ** 64
            status = "success" if share < limits.ota_success_rate else "failed"
            changed = sent_at + delay
        return {"deviceGuid": device, "uniqueId": duid, "status": status,
                "updatedDate": iso(changed)}

    def _check_schedule(self, scheduled: Any) -> None:
        if not scheduled:
            return
        try:
            when = datetime.strptime(str(scheduled), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError as exc:
            raise PreconditionFailed("scheduledOn must be 'YYYY-MM-DD HH:mm:ss'.",
                                     param="scheduledOn") from exc
        if when.timestamp() < self.ctx.clock():
            raise Conflict("scheduledOn is in the past.", param="ScheduledOnInPast")

    def _ota_targets(self, body: dict[str, Any], template_guid: str) -> list[Record]:
        target = body.get("target")
        devices = self.devices.on_template(template_guid)
        if target == 1:  # the entity and its sub-entities: PKG lib/ota.py:20 (audit C7)
            entity = self.accounts.entity(str(body.get("entityGuid") or ""))
            within = self.accounts.subtree(entity["guid"])
            return [d for d in devices if d["entityGuid"] in within]
        if target == 3:
            wanted = {str(g).upper() for g in body.get("deviceGuids") or []}
            chosen = [d for d in devices if d["guid"] in wanted]
            if not wanted or len(chosen) != len(wanted):
                raise absent("device")
            return chosen
        raise PreconditionFailed("target must be 1 (entity) or 3 (devices).", param="target")


def _settled(record: Record) -> Record:
    """An upgrade as it reads now: a publish in process (`releaseAt`) has ended once its
    time has come. Kept in the record, not written back, so reads stay reads."""
    due = record.get("releaseAt")
    if due is not None and time.time() >= float(due):
        record = {k: v for k, v in record.items() if k != "releaseAt"}
        record["isDraft"] = False
    return record
