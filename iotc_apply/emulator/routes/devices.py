"""Routes of the device service for devices, and of the telemetry service (device reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response

from .. import views
from ..errors import PreconditionFailed
from .common import body_json, no_content, ok, params, route, state


def register(bp: Blueprint) -> None:
    @route(bp, "/Device", ["GET"])
    def device_list() -> Response:
        st = state()
        rows = st.devices.devices(params())
        if not rows:
            return no_content()
        templates: dict[str, dict[str, Any]] = {}
        entities = {e["guid"]: e["name"] for e in st.accounts.entities()}
        items = []
        for d in rows:
            t = templates.get(d["templateGuid"]) or st.templates.template(d["templateGuid"])
            templates[d["templateGuid"]] = t
            items.append(views.device_list_item(d, t, entities.get(d["entityGuid"], "")))
        return ok(items, count=-1)

    @route(bp, "/Device/<guid>", ["GET"])
    def device_get(guid: str) -> Response:
        return _device_detail(state().devices.device(guid))

    @route(bp, "/device/<guid>/self-signed-certificate", ["GET"])
    def device_certificate(guid: str) -> Response:
        if state().account.pf != "az":  # AWS has no such route (api.md section 6)
            return Response("<html><body><h1>404 - Not Found</h1></body></html>",
                            status=404, mimetype="text/html")
        return ok([state().devices.registered_certificate(guid)])

    @route(bp, "/Device/uniqueId/<duid>", ["GET"])
    def device_by_duid(duid: str) -> Response:
        return _device_detail(state().devices.device_by_duid(duid))

    @route(bp, "/Device", ["POST"])
    def device_create() -> Response:
        record, counts = state().devices.create_device(body_json())
        return ok([{"newid": record["guid"], "entityGuid": record["entityGuid"],
                    "uniqueId": record["uniqueId"], "activeDeviceCount": counts["active"],
                    "inActiveDeviceCount": counts["inactive"], "ggDeviceScript": None,
                    "parentUniqueId": None}], message="Device created successfully.")

    @route(bp, "/Device/<guid>", ["PUT"])
    def device_update(guid: str) -> Response:
        state().devices.update_device(guid, body_json())
        return ok([], message="Device updated successfully.")

    @route(bp, "/Device/<guid>/status", ["PUT"])
    def device_status(guid: str) -> Response:
        state().devices.set_device_status(guid, body_json())
        return ok([], message="Device status updated successfully.")

    @route(bp, "/Device/<guid>", ["DELETE"])
    def device_delete(guid: str) -> Response:
        state().devices.delete_device(guid)
        return ok([], message="Device deleted successfully.")

    @route(bp, "/template-command/device/<device_guid>/send", ["POST"])
    def command_send(device_guid: str) -> Response:
        state().devices.send_command(device_guid, body_json())
        return ok([], message="Command sent successfully.")


def _device_detail(d: dict[str, Any]) -> Response:
    st = state()
    detail = views.device_detail(d, st.templates.template(d["templateGuid"]),
                                 st.accounts.entity(d["entityGuid"]), st.account.cpid)
    return ok([detail], count=1)


def register_telemetry(bp: Blueprint) -> None:
    @route(bp, "/Telemetry/device/<guid>", ["GET"])
    def telemetry_latest(guid: str) -> Response:
        state().devices.telemetry_check(guid=guid)
        return no_content()

    @route(bp, "/Telemetry/device/<duid>/recent/<int:points>", ["POST"])
    def telemetry_recent(duid: str, points: int) -> Response:
        if not 10 <= points <= 500:
            raise PreconditionFailed("dataPoints must be between 10 and 500.", "dataPoints")
        state().devices.telemetry_check(duid=duid)
        return ok({"count": 0, "feed": [], "version": "2.1"})

    @route(bp, "/Telemetry/attribute-history/device/<duid>/from/<start>/to/<end>", ["GET"])
    def telemetry_history(duid: str, start: str, end: str) -> Response:
        _check_window(start, end)
        state().devices.telemetry_check(duid=duid)
        return ok({"count": 0, "feed": [], "version": "2.1"})


def _check_window(start: str, end: str) -> None:
    """Source: IDX tests/telemetry.py, PKG lib/telemetry.py (ranges over 7 days are 412)."""
    def parse(text: str) -> datetime:
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                return datetime.strptime(text, fmt)
            except ValueError:
                continue
        raise PreconditionFailed(f"Invalid date '{text}'.", param="date")

    span = parse(end) - parse(start)
    if span.total_seconds() < 0 or span.days > 7:
        raise PreconditionFailed("The date range must be at most 7 days.", param="date")
