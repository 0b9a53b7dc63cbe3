"""Route handlers, one small function per endpoint, grouped by the service that serves it.

Every handler is parse -> state -> views -> envelope. Paths, casing and status codes follow
`shared/iotconnect-api.md` sections 2-4 and 8; the table in `SERVICES` names which base path
serves which area. Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from . import views
from .errors import PreconditionFailed
from .state import EmulatorState

SERVICES = ("auth", "user", "device", "firmware", "file", "telemetry", "event", "master")


def _emu() -> Any:
    return current_app.extensions["iotc_emulator"]


def _state() -> EmulatorState:
    return _emu().state


def ok(data: Any, count: int | None = None, message: str = "Success",
       extra: dict[str, Any] | None = None) -> Response:
    """The success envelope: `data`, `status`, `message`, `count` (+ endpoint extras)."""
    body: dict[str, Any] = {"data": data, "status": 200, "message": message, "count": count}
    body.update(extra or {})
    return jsonify(body)


def no_content() -> Response:
    """204 with an empty body: the service's answer to an empty list."""
    return Response(status=204)


def body_json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise PreconditionFailed("The request body must be a JSON object.", param="body")
    return data


def params() -> dict[str, Any]:
    return request.args.to_dict()


def register_routes(service: str, bp: Blueprint) -> None:
    {"auth": _auth, "user": _user, "device": _device, "firmware": _firmware, "file": _file,
     "telemetry": _telemetry}.get(service, lambda _bp: None)(bp)


def _route(bp: Blueprint, rule: str, methods: list[str]) -> Callable[[Callable[..., Any]],
                                                                    Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        bp.add_url_rule(rule, endpoint=f"{fn.__name__}", view_func=fn, methods=methods)
        return fn
    return wrap


# -- auth --------------------------------------------------------------------------------------


def _auth(bp: Blueprint) -> None:
    @_route(bp, "/Auth/basic-token", ["GET"])
    def basic_token() -> Response:
        return ok(_state().basic_token(), message="Basic token has been generated successfully")

    @_route(bp, "/Auth/login", ["POST"])
    def login() -> Response:
        data = request.get_json(silent=True) or {}
        return jsonify(_state().login(request.headers.get("Authorization"),
                                      request.headers.get("Solution-key"),
                                      data.get("username"), data.get("password")))

    @_route(bp, "/Auth/refresh-token", ["POST"])
    def refresh_token() -> Response:
        data = request.get_json(silent=True) or {}
        return jsonify(_state().refresh(data.get("refreshtoken")))


# -- user service: entities and users ------------------------------------------------------------


def _user(bp: Blueprint) -> None:
    @_route(bp, "/Entity", ["GET"])
    def entity_list() -> Response:
        rows = [views.entity_item(e) for e in _state().entities()]
        return ok(rows, count=len(rows)) if rows else no_content()

    @_route(bp, "/Entity/lookup", ["GET"])
    def entity_lookup() -> Response:
        rows = [{"guid": e["guid"], "name": e["name"], "parentEntityGuid": e["parentEntityGuid"]}
                for e in _state().entities()]
        return ok(rows, count=len(rows))

    @_route(bp, "/Entity/<guid>", ["GET"])
    def entity_get(guid: str) -> Response:
        return ok([views.entity_detail(_state().entity(guid))], count=1)

    @_route(bp, "/Entity", ["POST"])
    def entity_create() -> Response:
        record = _state().create_entity(body_json())
        return ok([{"entityGuid": record["guid"], "userGuid": None}],
                  message="Entity created successfully.")

    @_route(bp, "/User", ["GET"])
    def user_list() -> Response:
        return _user_page(params())

    @_route(bp, "/User/<guid>", ["GET"])
    def user_get(guid: str) -> Response:
        state = _state()
        user = state.user(guid)
        detail = views.user_detail(user, _entity_name(user["entityGuid"]),
                                   state.store.meta("company_guid") or "", state.account.cpid)
        return ok([detail], count=1)

    @_route(bp, "/User/<email>/availability", ["GET"])
    def user_availability(email: str) -> Response:
        user = _state().user_by_email(email)
        if user is None:
            return no_content()
        company = _state().store.meta("company_guid")
        return ok([{"guid": user["guid"], "userId": user["userId"], "companyGuid": company}])


def _user_page(args: dict[str, Any]) -> Response:
    from .state import _page

    state = _state()
    number, size = _page(args, state.limits.max_page_size)
    users = state.users()
    if args.get("Email"):
        users = [u for u in users if args["Email"].lower() in u["userId"].lower()]
    company = state.store.meta("company_guid") or ""
    rows = [views.user_list_item(u, _entity_name(u["entityGuid"]), company)
            for u in users[(number - 1) * size:number * size]]
    return ok(rows, count=len(users)) if rows else no_content()


def _entity_name(guid: str) -> str:
    record = _state().store.get("entity", guid)
    return record["name"] if record else ""


# -- device service: templates, attributes, commands, devices ------------------------------------


def _device(bp: Blueprint) -> None:
    _templates(bp)
    _attributes(bp)
    _commands(bp)
    _devices(bp)


def _templates(bp: Blueprint) -> None:
    @_route(bp, "/device-template", ["GET"])
    def template_list() -> Response:
        state = _state()
        rows, total = state.templates(params())
        items = [views.template_list_item(t, state.template_stats(t["guid"]),
                                          state.active_firmware_of(t["guid"])) for t in rows]
        return ok(items, count=total) if items else no_content()

    @_route(bp, "/device-template/datatype", ["GET"])
    def datatypes() -> Response:
        rows = _state().data_types()
        return ok(rows, count=len(rows))

    @_route(bp, "/device-template/template-code/<code>", ["GET"])
    def template_by_code(code: str) -> Response:
        return _template_detail(_state().template_by_code(code))

    @_route(bp, "/device-template/<guid>", ["GET"])
    def template_get(guid: str) -> Response:
        return _template_detail(_state().template(guid))

    @_route(bp, "/device-template/quick", ["POST"])
    def template_quick() -> Response:
        record = _state().create_template(_template_json(), g.user)
        # The quick-create answer carries a lower-case GUID (the official client upper-cases).
        return ok([{"deviceTemplateGuid": record["guid"].lower()}],
                  message="Template created successfully.")

    @_route(bp, "/device-template/<guid>", ["PUT"])
    def template_update(guid: str) -> Response:
        _state().update_template(guid, body_json(), g.user)
        return ok([{}], message="Template updated successfully.")

    @_route(bp, "/device-template/<guid>", ["DELETE"])
    def template_delete(guid: str) -> Response:
        _state().delete_template(guid)
        return ok([], message="Template deleted successfully.")


def _template_detail(t: dict[str, Any]) -> Response:
    state = _state()
    detail = views.template_detail(t, state.store.children("command", t["guid"]),
                                   state.active_firmware_of(t["guid"]),
                                   state.store.count("device", t["guid"]))
    return ok([detail], count=1, extra={"template-auto-push": False})


def _template_json() -> Any:
    """The template JSON from the multipart `file`/`File` part or the `TemplateJSON` field."""
    upload = request.files.get("file") or request.files.get("File")
    raw = upload.read() if upload is not None else request.form.get("TemplateJSON", "")
    if not raw:
        raise PreconditionFailed("A template JSON file is required.", param="File")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PreconditionFailed("The template JSON is not valid JSON.", param="File") from exc


def _attributes(bp: Blueprint) -> None:
    # ASSUMPTION: attribute and command lists of an existing template answer 200 with
    # `data: []` when empty (the official client accepts only 200 or 409 there), while
    # device/template/firmware/upgrade/user/entity lists answer 204.
    @_route(bp, "/template-attribute/<template_guid>", ["GET"])
    def attribute_list(template_guid: str) -> Response:
        rows, total = _state().attributes(template_guid, params())
        return ok([views.attribute_item(a) for a in rows], count=total)

    @_route(bp, "/template-attribute", ["POST"])
    def attribute_create() -> Response:
        record = _state().create_attribute(body_json(), g.user)
        return ok([{"newid": record["guid"]}], message="Attribute created successfully.")

    @_route(bp, "/template-attribute/<guid>", ["PUT"])
    def attribute_update(guid: str) -> Response:
        _state().update_attribute(guid, body_json(), g.user)
        return ok([], message="Attribute updated successfully.")

    @_route(bp, "/template-attribute/<guid>", ["DELETE"])
    def attribute_delete(guid: str) -> Response:
        _state().delete_attribute(guid)
        return ok([], message="Attribute deleted successfully.")


def _commands(bp: Blueprint) -> None:
    @_route(bp, "/template-command/<template_guid>", ["GET"])
    def command_list(template_guid: str) -> Response:
        rows = [views.command_item(c) for c in _state().commands(template_guid)]
        return ok(rows, count=len(rows))

    @_route(bp, "/template-command", ["POST"])
    def command_create() -> Response:
        record = _state().create_command(body_json(), g.user)
        return ok([{"newid": record["guid"]}], message="Command created successfully.")

    @_route(bp, "/template-command/<guid>", ["PUT"])
    def command_update(guid: str) -> Response:
        _state().update_command(guid, body_json(), g.user)
        return ok([], message="Command updated successfully.")

    @_route(bp, "/template-command/<guid>", ["DELETE"])
    def command_delete(guid: str) -> Response:
        _state().delete_command(guid)
        return ok([], message="Command deleted successfully.")

    @_route(bp, "/template-command/device/<device_guid>/send", ["POST"])
    def command_send(device_guid: str) -> Response:
        _state().send_command(device_guid, body_json())
        return ok([], message="Command sent successfully.")


def _devices(bp: Blueprint) -> None:
    @_route(bp, "/Device", ["GET"])
    def device_list() -> Response:
        state = _state()
        rows = state.devices(params())
        if not rows:
            return no_content()
        templates: dict[str, dict[str, Any]] = {}
        entities = {e["guid"]: e["name"] for e in state.entities()}
        items = []
        for d in rows:
            t = templates.get(d["templateGuid"]) or state.template(d["templateGuid"])
            templates[d["templateGuid"]] = t
            items.append(views.device_list_item(d, t, entities.get(d["entityGuid"], "")))
        return ok(items, count=-1)

    @_route(bp, "/Device/<guid>", ["GET"])
    def device_get(guid: str) -> Response:
        return _device_detail(_state().device(guid))

    @_route(bp, "/Device/uniqueId/<duid>", ["GET"])
    def device_by_duid(duid: str) -> Response:
        return _device_detail(_state().device_by_duid(duid))

    @_route(bp, "/Device", ["POST"])
    def device_create() -> Response:
        record, counts = _state().create_device(body_json())
        return ok([{"newid": record["guid"], "entityGuid": record["entityGuid"],
                    "uniqueId": record["uniqueId"], "activeDeviceCount": counts["active"],
                    "inActiveDeviceCount": counts["inactive"], "ggDeviceScript": None,
                    "parentUniqueId": None}], message="Device created successfully.")

    @_route(bp, "/Device/<guid>", ["PUT"])
    def device_update(guid: str) -> Response:
        _state().update_device(guid, body_json())
        return ok([], message="Device updated successfully.")

    @_route(bp, "/Device/<guid>/status", ["PUT"])
    def device_status(guid: str) -> Response:
        _state().set_device_status(guid, body_json())
        return ok([], message="Device status updated successfully.")

    @_route(bp, "/Device/<guid>", ["DELETE"])
    def device_delete(guid: str) -> Response:
        _state().delete_device(guid)
        return ok([], message="Device deleted successfully.")


def _device_detail(d: dict[str, Any]) -> Response:
    state = _state()
    detail = views.device_detail(d, state.template(d["templateGuid"]),
                                 state.entity(d["entityGuid"]), state.account.cpid)
    return ok([detail], count=1)


# -- firmware service: firmware, upgrades, OTA ---------------------------------------------------


def _firmware(bp: Blueprint) -> None:
    _firmwares(bp)
    _upgrades(bp)

    @_route(bp, "/ota-update", ["POST"])
    def ota_push() -> Response:
        return ok(_state().push_ota(body_json()), message="OTA update process started.")


def _firmwares(bp: Blueprint) -> None:
    @_route(bp, "/Firmware", ["GET"])
    def firmware_list() -> Response:
        state = _state()
        rows, total = state.firmwares(params())
        items = [views.firmware_list_item(f, state.store.get("template", f["templateGuid"]),
                                          state.upgrades_of(f["guid"])) for f in rows]
        return ok(items, count=total) if items else no_content()

    @_route(bp, "/Firmware/<guid>", ["GET"])
    def firmware_get(guid: str) -> Response:
        state = _state()
        fw = state.firmware(guid)
        upgrades = state.upgrades_of(fw["guid"])
        files = {u["guid"]: state.store.children("file", u["guid"]) for u in upgrades}
        detail = views.firmware_detail(fw, state.store.get("template", fw["templateGuid"]),
                                       upgrades, files, _emu().file_url,
                                       nested_upgrades=state.account.pf == "aws")
        return ok([detail], count=1)

    @_route(bp, "/Firmware", ["POST"])
    def firmware_create() -> Response:
        fw, upgrade = _state().create_firmware(body_json(), g.user)
        return ok([{"newId": fw["guid"], "firmwareUpgradeGuid": upgrade["guid"]}],
                  message="Firmware created successfully.")

    @_route(bp, "/Firmware/<guid>", ["PUT"])
    def firmware_update(guid: str) -> Response:
        _state().update_firmware(guid, body_json(), g.user)
        return ok([], message="Firmware updated successfully.")

    @_route(bp, "/Firmware/<guid>/deprecate", ["PUT"])
    def firmware_deprecate(guid: str) -> Response:
        _state().deprecate_firmware(guid, g.user)
        return ok([], message="Firmware deprecated successfully.")


def _upgrades(bp: Blueprint) -> None:
    @_route(bp, "/firmware-upgrade", ["GET"])
    def upgrade_list() -> Response:
        state = _state()
        rows, total = state.upgrades(params())
        items = []
        for u in rows:
            fw = state.firmware(u["firmwareGuid"])
            files = state.store.children("file", u["guid"])
            items.append(views.upgrade_list_item(u, fw, files, _emu().file_url))
        return ok(items, count=total) if items else no_content()

    @_route(bp, "/firmware-upgrade/<guid>", ["GET"])
    def upgrade_get(guid: str) -> Response:
        state = _state()
        u = state.upgrade(guid)
        fw = state.firmware(u["firmwareGuid"])
        item = views.upgrade_item(u, fw, state.store.children("file", u["guid"]),
                                  _emu().file_url)
        return ok([item], count=1)

    @_route(bp, "/firmware-upgrade", ["POST"])
    def upgrade_create() -> Response:
        record = _state().create_upgrade(body_json(), g.user)
        return ok([{"newId": record["guid"]}], message="Firmware upgrade created successfully.")

    @_route(bp, "/firmware-upgrade/<guid>", ["PUT"])
    def upgrade_update(guid: str) -> Response:
        _state().update_upgrade(guid, body_json(), g.user)
        return ok([], message="Firmware upgrade updated successfully.")

    @_route(bp, "/firmware-upgrade/<guid>/publish", ["PUT"])
    def upgrade_publish(guid: str) -> Response:
        _state().publish_upgrade(guid, g.user)
        return ok([], message="Firmware upgrade publish process started.")

    @_route(bp, "/firmware-upgrade/<guid>", ["DELETE"])
    def upgrade_delete(guid: str) -> Response:
        single = request.args.get("isDeleteSingleFirmware", "").lower() == "true"
        _state().delete_upgrade(guid, single)
        return ok([], message="Firmware upgrade deleted successfully.")


# -- file service ------------------------------------------------------------------------------


def _file(bp: Blueprint) -> None:
    @_route(bp, "/File", ["POST"])
    def file_upload() -> Response:
        upload = request.files.get("fileData")
        if upload is None:
            raise PreconditionFailed("fileData is required.", param="fileData")
        record = _state().upload_file(request.form.get("ModuleType", ""),
                                      request.form.get("fileRefGuid", ""),
                                      upload.filename or "", upload.read(),
                                      request.form.get("Tag"))
        return ok([views.file_item(record, _emu().file_url)], message="File uploaded.")

    @_route(bp, "/File/<module>/<ref_guid>", ["GET"])
    def file_list(module: str, ref_guid: str) -> Response:
        rows = [views.file_item(f, _emu().file_url) for f in _state().files(module, ref_guid)]
        return ok({"fileData": rows}, count=len(rows))

    @_route(bp, "/File/<module>/<guid>", ["DELETE"])
    def file_delete(module: str, guid: str) -> Response:
        if not _state().delete_file(module, guid):
            return no_content()
        return ok([], message="File deleted successfully.")


# -- telemetry service ---------------------------------------------------------------------------


def _telemetry(bp: Blueprint) -> None:
    @_route(bp, "/Telemetry/device/<guid>", ["GET"])
    def telemetry_latest(guid: str) -> Response:
        _state().telemetry_check(guid=guid)
        return no_content()

    @_route(bp, "/Telemetry/device/<duid>/recent/<int:points>", ["POST"])
    def telemetry_recent(duid: str, points: int) -> Response:
        if not 10 <= points <= 500:
            raise PreconditionFailed("dataPoints must be between 10 and 500.", "dataPoints")
        _state().telemetry_check(duid=duid)
        return ok({"count": 0, "feed": [], "version": "2.1"})

    @_route(bp, "/Telemetry/attribute-history/device/<duid>/from/<start>/to/<end>", ["GET"])
    def telemetry_history(duid: str, start: str, end: str) -> Response:
        _check_window(start, end)
        _state().telemetry_check(duid=duid)
        return ok({"count": 0, "feed": [], "version": "2.1"})


def _check_window(start: str, end: str) -> None:
    from datetime import datetime

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
