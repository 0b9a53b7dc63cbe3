"""Routes of the device service for templates, data types, attributes and commands."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, g, request

from .. import views
from ..errors import PreconditionFailed
from .common import body_json, emu, no_content, ok, params, route, state


def register(bp: Blueprint) -> None:
    _templates(bp)
    _attributes(bp)
    _commands(bp)


def _templates(bp: Blueprint) -> None:
    @route(bp, "/device-template", ["GET"])
    def template_list() -> Response:
        rules = state().templates
        rows, total = rules.templates(params())
        items = [views.template_list_item(t, rules.template_stats(t["guid"]),
                                          rules.firmware.active_firmware_of(t["guid"]))
                 for t in rows]
        return ok(items, count=total) if items else no_content()

    @route(bp, "/device-template/datatype", ["GET"])
    def datatypes() -> Response:
        rows = state().templates.data_types()
        return ok(rows, count=len(rows))

    @route(bp, "/device-template/template-code/<code>", ["GET"])
    def template_by_code(code: str) -> Response:
        return _template_detail(state().templates.template_by_code(code))

    @route(bp, "/device-template/<guid>", ["GET"])
    def template_get(guid: str) -> Response:
        return _template_detail(state().templates.template(guid))

    @route(bp, "/device-template/quick", ["POST"])
    def template_quick() -> Response:
        record = state().templates.create_template(_template_json(), g.user)
        # The quick-create answer carries a lower-case GUID (the official client upper-cases).
        return ok([{"deviceTemplateGuid": record["guid"].lower()}],
                  message="Template created successfully.")

    @route(bp, "/device-template/<guid>", ["PUT"])
    def template_update(guid: str) -> Response:
        state().templates.update_template(guid, body_json(), g.user)
        return ok([{}], message="Template updated successfully.")

    @route(bp, "/device-template/<guid>", ["DELETE"])
    def template_delete(guid: str) -> Response:
        state().templates.delete_template(guid)
        return ok([], message="Template deleted successfully.")


def _template_detail(t: dict[str, Any]) -> Response:
    rules = state().templates
    detail = views.template_detail(t, rules.commands(t["guid"]),
                                   rules.firmware.active_firmware_of(t["guid"]),
                                   rules.devices.count_on_template(t["guid"]))
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
    @route(bp, "/template-attribute/<template_guid>", ["GET"])
    def attribute_list(template_guid: str) -> Response:
        rows, total = state().templates.attributes(template_guid, params())
        if not rows and emu().traffic.knobs.empty_204:
            return no_content()
        return ok([views.attribute_item(a) for a in rows], count=total)

    @route(bp, "/template-attribute", ["POST"])
    def attribute_create() -> Response:
        record = state().templates.create_attribute(body_json(), g.user)
        # `newId`: the swagger's AttributeCreate response (ALV AttributeCreate.md says newid;
        # the AWS swagger wins over the Azure-generated client, DESIGN.md section 9).
        return ok([{"newId": record["guid"]}], message="Attribute created successfully.")

    @route(bp, "/template-attribute/<guid>", ["PUT"])
    def attribute_update(guid: str) -> Response:
        state().templates.update_attribute(guid, body_json(), g.user)
        return ok([], message="Attribute updated successfully.")

    @route(bp, "/template-attribute/<guid>", ["DELETE"])
    def attribute_delete(guid: str) -> Response:
        state().templates.delete_attribute(guid)
        return ok([], message="Attribute deleted successfully.")


def _commands(bp: Blueprint) -> None:
    @route(bp, "/template-command/<template_guid>", ["GET"])
    def command_list(template_guid: str) -> Response:
        rows = [views.command_item(c) for c in state().templates.commands(template_guid)]
        if not rows and emu().traffic.knobs.empty_204:
            return no_content()
        return ok(rows, count=len(rows))

    @route(bp, "/template-command", ["POST"])
    def command_create() -> Response:
        record = state().templates.create_command(body_json(), g.user)
        return ok([{"newId": record["guid"]}], message="Command created successfully.")

    @route(bp, "/template-command/<guid>", ["PUT"])
    def command_update(guid: str) -> Response:
        state().templates.update_command(guid, body_json(), g.user)
        return ok([], message="Command updated successfully.")

    @route(bp, "/template-command/<guid>", ["DELETE"])
    def command_delete(guid: str) -> Response:
        state().templates.delete_command(guid)
        return ok([], message="Command deleted successfully.")
