"""Routes of the firmware service: firmware, upgrades and OTA pushes."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from .. import views
from .common import body_json, emu, no_content, ok, params, route, state


def register(bp: Blueprint) -> None:
    _firmwares(bp)
    _upgrades(bp)

    @route(bp, "/ota-update", ["POST"])
    def ota_push() -> Response:
        return ok(state().firmware.push_ota(body_json()), message="OTA update process started.")

    @route(bp, "/ota-update", ["GET"])
    def ota_list() -> Response:
        items, total = state().firmware.ota_updates(params())
        return ok(items, count=total) if items else no_content()

    @route(bp, "/ota-update/<guid>", ["GET"])
    def ota_devices(guid: str) -> Response:
        return ok(state().firmware.ota_devices(guid))


def _firmwares(bp: Blueprint) -> None:
    @route(bp, "/Firmware", ["GET"])
    def firmware_list() -> Response:
        rules = state().firmware
        rows, total = rules.firmwares(params())
        items = [views.firmware_list_item(f, rules.templates.lookup(f["templateGuid"]),
                                          rules.upgrades_of(f["guid"])) for f in rows]
        return ok(items, count=total) if items else no_content()

    @route(bp, "/Firmware/<guid>", ["GET"])
    def firmware_get(guid: str) -> Response:
        st = state()
        rules = st.firmware
        fw = rules.firmware(guid)
        upgrades = rules.upgrades_of(fw["guid"])
        files = {u["guid"]: rules.files.files_of(u["guid"]) for u in upgrades}
        detail = views.firmware_detail(fw, rules.templates.lookup(fw["templateGuid"]),
                                       upgrades, files, emu().file_url,
                                       nested_upgrades=st.account.pf == "aws")
        return ok([detail], count=1)

    @route(bp, "/Firmware", ["POST"])
    def firmware_create() -> Response:
        fw, upgrade = state().firmware.create_firmware(body_json(), g.user)
        return ok([{"newId": fw["guid"], "firmwareUpgradeGuid": upgrade["guid"]}],
                  message="Firmware created successfully.")

    @route(bp, "/Firmware/<guid>", ["PUT"])
    def firmware_update(guid: str) -> Response:
        state().firmware.update_firmware(guid, body_json(), g.user)
        return ok([], message="Firmware updated successfully.")

    @route(bp, "/Firmware/<guid>/deprecate", ["PUT"])
    def firmware_deprecate(guid: str) -> Response:
        state().firmware.deprecate_firmware(guid, g.user)
        return ok([], message="Firmware deprecated successfully.")


def _upgrades(bp: Blueprint) -> None:
    @route(bp, "/firmware-upgrade", ["GET"])
    def upgrade_list() -> Response:
        rules = state().firmware
        rows, total = rules.upgrades(params())
        items = [views.upgrade_list_item(u, rules.firmware(u["firmwareGuid"]),
                                         rules.files.files_of(u["guid"]), emu().file_url)
                 for u in rows]
        return ok(items, count=total) if items else no_content()

    @route(bp, "/firmware-upgrade/<guid>", ["GET"])
    def upgrade_get(guid: str) -> Response:
        rules = state().firmware
        u = rules.upgrade(guid)
        item = views.upgrade_item(u, rules.firmware(u["firmwareGuid"]),
                                  rules.files.files_of(u["guid"]), emu().file_url)
        return ok([item], count=1)

    @route(bp, "/firmware-upgrade", ["POST"])
    def upgrade_create() -> Response:
        record = state().firmware.create_upgrade(body_json(), g.user)
        return ok([{"newId": record["guid"]}], message="Firmware upgrade created successfully.")

    @route(bp, "/firmware-upgrade/<guid>", ["PUT"])
    def upgrade_update(guid: str) -> Response:
        state().firmware.update_upgrade(guid, body_json(), g.user)
        return ok([], message="Firmware upgrade updated successfully.")

    @route(bp, "/firmware-upgrade/<guid>/publish", ["PUT"])
    def upgrade_publish(guid: str) -> Response:
        state().firmware.publish_upgrade(guid, g.user)
        return ok([], message="Firmware upgrade publish process started.")

    @route(bp, "/firmware-upgrade/<guid>", ["DELETE"])
    def upgrade_delete(guid: str) -> Response:
        single = request.args.get("isDeleteSingleFirmware", "").lower() == "true"
        state().firmware.delete_upgrade(guid, single)
        return ok([], message="Firmware upgrade deleted successfully.")
