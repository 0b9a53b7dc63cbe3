"""The emulator refuses what the real service refuses, with the same status and casing."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from iotc_apply.emulator import EmulatorServer, Limits

from .support import TEMPLATE_JSON, Raw, self_signed_pem


def tpl(**fields: Any) -> bytes:
    """A template JSON in the vendor samples' shape with `fields` changed."""
    return json.dumps({**TEMPLATE_JSON, **fields}).encode()


def said(resp: requests.Response) -> str:
    """The refusal's message: the wire carries a param code only where a source shows one."""
    assert resp.json().get("error") in ([], {}), resp.json()
    return str(resp.json()["message"])


def codes(resp: requests.Response) -> list[str]:
    return [e["param"] for e in resp.json().get("error", [])]


def test_discovery_lists_a_distinct_base_path_per_service(raw: Raw) -> None:
    bases = {raw.urls[k] for k in ("authBaseUrl", "userBaseUrl", "deviceBaseUrl",
                                   "firmwareBaseUrl", "fileBaseUrl", "telemetryBaseUrl")}
    assert len(bases) == 6
    assert all(b.endswith("/api/v2.1") for b in bases)
    assert raw("GET", "firmware", "/Device").status_code == 404
    assert raw("GET", "device", "/Device").status_code == 204


def test_discovery_of_unknown_solution_key_answers_null_data(server: EmulatorServer) -> None:
    resp = requests.get(f"{server.discovery_url}/solutionkey/nope/env/poc", timeout=5)
    assert resp.status_code == 200 and resp.json()["data"] is None


def test_login_refuses_bad_password_bad_basic_token_and_bad_solution_key(raw: Raw) -> None:
    acc = raw.server.emulator.state.account
    url = raw.urls["authBaseUrl"] + "/Auth/login"
    basic = requests.get(raw.urls["authBaseUrl"] + "/Auth/basic-token", timeout=5).json()["data"]
    good = {"Authorization": "Basic " + basic, "Solution-key": acc.solution_key}
    body = {"username": acc.user_email, "password": "wrong"}
    assert requests.post(url, headers=good, json=body, timeout=5).status_code == 401
    body["password"] = acc.user_password
    bad_basic = {**good, "Authorization": "Basic bm90LWlzc3VlZA=="}
    assert requests.post(url, headers=bad_basic, json=body, timeout=5).status_code == 401
    bad_key = {**good, "Solution-key": "other"}
    assert requests.post(url, headers=bad_key, json=body, timeout=5).status_code == 401
    ok = requests.post(url, headers=good, json=body, timeout=5)
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer"
    assert "data" not in ok.json()  # the login answer is not enveloped


def test_refresh_rotates_and_refuses_a_spent_token(raw: Raw) -> None:
    url = raw.urls["authBaseUrl"] + "/Auth/refresh-token"
    first = requests.post(url, json={"refreshtoken": raw.tokens["refresh_token"]}, timeout=5)
    assert first.status_code == 200
    claims = first.json()["access_token"].split(".")[1]
    import base64
    import json
    user = json.loads(base64.urlsafe_b64decode(claims + "==="))["user"]
    assert "isCpidOptional" not in user and user["cpId"]  # refreshed tokens lack the claim
    again = requests.post(url, json={"refreshtoken": raw.tokens["refresh_token"]}, timeout=5)
    assert again.status_code == 409


def test_calls_need_a_valid_unexpired_bearer_token(server: EmulatorServer) -> None:
    raw = Raw(server)
    refused = raw("GET", "user", "/Entity", headers={"Authorization": "Bearer x.y.z"})
    assert refused.status_code == 401 and refused.json()["error"] == []  # ErrorsResponse
    assert raw("GET", "user", "/Entity", headers={"Authorization": ""}).status_code == 401
    server.emulator.state.limits.token_lifetime = 1
    short = Raw(server)
    time.sleep(1.1)
    assert short("GET", "user", "/Entity").status_code == 401


def test_a_token_already_accepted_is_refused_once_it_expires(server: EmulatorServer) -> None:
    """The emulator keeps the claims of a token it has checked; expiry is still checked on
    every call, against its own clock."""
    raw = Raw(server)
    assert raw("GET", "user", "/Entity").status_code == 200
    assert raw("GET", "user", "/Entity").status_code == 200  # the kept claims
    lifetime = int(raw.tokens["expires_in"])
    server.emulator.state.ctx.advance(lifetime + 1)
    refused = raw("GET", "user", "/Entity")
    assert refused.status_code == 401 and refused.json()["error"] == []


def test_template_quick_create_quirks_and_lookups(raw: Raw) -> None:
    body = {**TEMPLATE_JSON, "code": "abc1", "name": "A", "commands": [],
            "attributes": [{"name": "t", "type": "STRING"}]}
    resp = raw("POST", "device", "/device-template/quick",
               files={"file": ("t.json", json.dumps(body).encode())})
    guid = resp.json()["data"][0]["deviceTemplateGuid"]
    assert guid == guid.lower() and resp.json()["status"] == 200
    by_code = raw("GET", "device", "/device-template/template-code/abc1").json()
    assert by_code["data"][0]["templateCode"] == "abc1" and "template-auto-push" in by_code
    assert raw("GET", "device", f"/device-template/{guid.upper()}").status_code == 200
    listed = raw("GET", "device", "/device-template").json()
    assert listed["data"][0]["code"] == "abc1" and listed["count"] == 1
    assert raw("GET", "device", "/device-template/template-code/nope").status_code == 409
    missing = "00000000-0000-0000-0000-000000000000"
    assert raw("GET", "device", f"/device-template/{missing}").status_code == 404
    assert raw("GET", "device", f"/template-attribute/{missing}").status_code == 409
    assert raw("GET", "device", f"/template-command/{missing}").status_code == 409


def test_template_json_must_have_the_vendor_samples_shape(raw: Raw) -> None:
    """OLD examples/sample-device-template.json: every sample carries these, typed so."""
    def create(body: dict[str, Any]) -> requests.Response:
        return raw("POST", "device", "/device-template/quick",
                   files={"file": ("t.json", json.dumps(body).encode())})

    number = {**TEMPLATE_JSON, "properties": {**TEMPLATE_JSON["properties"],
                                              "dataFrequency": 60}}
    refused = create(number)
    assert refused.status_code == 400 and refused.json()["message"] == \
        "The JSON value of 'dataFrequency' could not be converted to str."
    no_meta = {k: v for k, v in TEMPLATE_JSON.items() if k != "_meta"}
    assert create(no_meta).json()["message"] == "The _meta field is required."
    assert create({**TEMPLATE_JSON, "greenGrass": 0}).status_code == 400
    assert create(TEMPLATE_JSON).status_code == 200


def test_template_duplicates_and_name_rules(raw: Raw) -> None:
    raw.template()
    dup = raw("POST", "device", "/device-template/quick", files={"file": (
        "t.json", json.dumps({**TEMPLATE_JSON, "code": "SENSOR01", "name": "Other"}).encode())})
    assert dup.status_code == 409 and said(dup) == 'Template code already exists.'
    same_name = raw("POST", "device", "/device-template/quick",
                    files={"file": ("t.json", tpl(code="x2", name="sensor"))})
    assert codes(same_name) == ["DeviceTemplateNameAlreadyExists"]
    for bad in (tpl(code="1abc", name="N"), tpl(code="abcdefghijk", name="N"),
                tpl(code="ab-c", name="N")):
        assert raw("POST", "device", "/device-template/quick",
                   files={"file": ("t.json", bad)}).status_code == 412
    assert raw("POST", "device", "/device-template/quick",
               files={"file": ("t.json", tpl(code="ok1", name="N", authType=9))}
               ).status_code == 409
    # AE template swagger: AWS knows auth types 2, 3 and 7 only (TPM is Azure's).
    assert raw("POST", "device", "/device-template/quick",
               files={"file": ("t.json", tpl(code="ok2", name="N2", authType=4))}
               ).status_code == 409
    assert raw("POST", "device", "/device-template/quick",
               files={"file": ("t.json", b"not json")}).status_code == 412


def test_device_create_quirks(raw: Raw) -> None:
    template = raw.template()
    resp = raw.device(template, "dev-1")
    item = resp.json()["data"][0]
    assert resp.status_code == 200 and "newid" in item and item["uniqueId"] == "dev-1"
    dup = raw.device(template, "DEV-1")
    assert dup.status_code == 409 and codes(dup) == ["UniqueIdAlreadyExists"]
    listed = raw("GET", "device", "/Device", params={"pageSize": 10}).json()
    assert listed["count"] == -1 and "IsAcquired" in listed["data"][0]
    assert "entityGuid" not in listed["data"][0] and listed["data"][0]["entityName"]
    detail = raw("GET", "device", "/Device/uniqueId/dev-1").json()["data"][0]
    assert detail["entityGuid"] and detail["cpId"] and detail["isAcquired"] == 0
    assert raw("GET", "device", "/Device/uniqueId/nope").status_code == 409
    assert raw("GET", "device", "/Device/00000000-0000-0000-0000-000000000000").status_code \
        == 409


def test_device_refusals(raw: Raw) -> None:
    template = raw.template()
    bad_cert = raw.device(template, "dev-2", certificateText="-----BEGIN CERTIFICATE-----x")
    assert bad_cert.status_code == 412
    assert raw.device(template, "dev-3", certificateText="").status_code == 412
    individual = raw.template(code="ind1", name="Individual", authType=7)
    assert raw.device(individual, "dev-9", certificateText="").status_code == 412
    assert raw.device(template, "x" * 32).status_code == 412
    assert raw.device(template, "has space").status_code == 412
    pem = self_signed_pem("shared")
    assert raw.device(template, "dev-4", certificateText=pem).status_code == 200
    reused = raw.device(template, "dev-5", certificateText=pem)
    assert said(reused) == 'Certificate is already in use by another device.'
    no_attrs = raw.template(code="empty1", name="Empty", attributes=[])
    refused = raw.device(no_attrs, "dev-6")
    assert refused.status_code == 409 and said(refused) == 'Device template has no attributes.'
    assert raw.device("00000000-0000-0000-0000-000000000000", "dev-7").status_code == 409
    assert raw.device(template, "dev-8", entityGuid="00000000-0000-0000-0000-000000000000") \
        .status_code == 409


def test_device_update_status_and_delete(raw: Raw) -> None:
    template = raw.template()
    guid = raw.device(template, "dev-1").json()["data"][0]["newid"]
    child = next(e["guid"] for e in raw("GET", "user", "/Entity").json()["data"]
                 if e["name"] == "Plant-A")
    upd = raw("PUT", "device", f"/Device/{guid}", json={"displayName": "D", "entityGuid": child})
    assert upd.status_code == 200
    detail = raw("GET", "device", f"/Device/{guid}").json()["data"][0]
    assert (detail["displayName"], detail["entityName"]) == ("D", "Plant-A")
    assert raw("PUT", "device", f"/Device/{guid}/status", json={"isActive": True}) \
        .status_code == 409  # already in that state
    assert raw("PUT", "device", f"/Device/{guid}/status", json={"isActive": False}) \
        .status_code == 200
    assert raw("DELETE", "device", f"/Device/{guid}").json()["data"] == []
    assert raw("DELETE", "device", f"/Device/{guid}").status_code == 409


def test_the_create_answer_counts_active_and_inactive_devices(raw: Raw) -> None:
    """`activeDeviceCount`/`inActiveDeviceCount` of a create's answer (api.md 4.4) as the
    emulator reads them (open question 19 there: no source says what they count): running
    totals of the account's devices that deactivation and deletion move."""
    template = raw.template()

    def created(duid: str) -> tuple[str, int, int]:
        item = raw.device(template, duid).json()["data"][0]
        return item["newid"], item["activeDeviceCount"], item["inActiveDeviceCount"]

    first, *counts = created("dev-1")
    assert counts == [1, 0]
    second, *counts = created("dev-2")
    assert counts == [2, 0]
    assert raw("PUT", "device", f"/Device/{second}/status", json={"isActive": False}) \
        .status_code == 200
    assert created("dev-3")[1:] == (2, 1)
    assert raw("DELETE", "device", f"/Device/{second}").status_code == 200  # inactive
    assert raw("DELETE", "device", f"/Device/{first}").status_code == 200  # active
    assert created("dev-4")[1:] == (2, 0)  # dev-3 and dev-4


def test_template_delete_is_blocked_by_devices_and_firmware(raw: Raw) -> None:
    template = raw.template()
    guid = raw.device(template, "dev-1").json()["data"][0]["newid"]
    blocked = raw("DELETE", "device", f"/device-template/{template}")
    assert blocked.status_code == 409
    raw("DELETE", "device", f"/Device/{guid}")
    fw = raw.firmware(template)
    assert codes(raw("DELETE", "device", f"/device-template/{template}")) == [
        "TemplateAlreadyAttachedWithFirmware"]
    assert raw("PUT", "firmware", f"/Firmware/{fw['newId']}/deprecate").status_code == 200
    assert raw("DELETE", "device", f"/device-template/{template}").status_code == 200


def test_firmware_rules(raw: Raw) -> None:
    template = raw.template()
    body = {"deviceTemplateGuid": template, "firmwareName": "SENSFW", "hardware": "1.0",
            "software": "1.0.0", "FirmwareDescription": "d"}
    created = raw("POST", "firmware", "/Firmware", json=body).json()["data"][0]
    assert set(created) == {"newId", "firmwareUpgradeGuid"}
    second = raw("POST", "firmware", "/Firmware", json={**body, "firmwareName": "OTHERFW"})
    assert codes(second) == ["TemplateAlreadyAttachedWithFirmware"]
    for name in ("lower", "AB", "ELEVENCHARS", "A-B"):
        assert raw("POST", "firmware", "/Firmware",
                   json={**body, "firmwareName": name}).status_code == 412
    detail = raw("GET", "firmware", f"/Firmware/{created['newId']}").json()["data"][0]
    assert isinstance(detail["Upgrades"], dict)  # the AWS nesting quirk
    assert detail["Upgrades"]["Upgrade"][0]["isDraft"] == "Draft"
    assert raw("GET", "firmware", "/Firmware/00000000-0000-0000-0000-000000000000") \
        .status_code == 404
    assert raw("PUT", "firmware", f"/Firmware/{created['newId']}/deprecate").status_code == 200
    assert raw("PUT", "firmware", f"/Firmware/{created['newId']}/deprecate").status_code == 409
    assert raw("GET", "firmware", "/Firmware").status_code == 204  # deprecated hidden
    shown = raw("GET", "firmware", "/Firmware", params={"includeDeprecated": "true"}).json()
    assert shown["data"][0]["isDeprecated"] is True and "createdby" in shown["data"][0]
    taken = raw("POST", "firmware", "/Firmware", json={**body, "deviceTemplateGuid":
                                                      raw.template(code="t2", name="T2")})
    assert taken.status_code == 200  # a deprecated firmware frees its name
    again = raw("POST", "firmware", "/Firmware", json=body)
    assert said(again) == 'Firmware name already exists.'
    # firmware cannot be deleted, only deprecated: there is no DELETE route
    assert raw("DELETE", "firmware", f"/Firmware/{created['newId']}").status_code == 405


def test_upgrade_rules(raw: Raw, server: EmulatorServer) -> None:
    template = raw.template()
    fw = raw.firmware(template)
    first = fw["firmwareUpgradeGuid"]
    assert said(raw("PUT", "firmware", f"/firmware-upgrade/{first}/publish")) == \
        "Firmware upgrade has no file."
    up = raw("POST", "file", "/File", data={"fileRefGuid": first, "ModuleType": "firmware"},
             files={"fileData": ("fw.bin", b"abc")})
    assert up.json()["data"][0]["tag"] is None  # kept as sent: none (fidelity audit C4)
    assert raw("PUT", "firmware", f"/firmware-upgrade/{first}/publish").status_code == 200
    assert raw("PUT", "firmware", f"/firmware-upgrade/{first}/publish").status_code == 409
    late = raw("POST", "file", "/File", data={"fileRefGuid": first, "ModuleType": "firmware"},
               files={"fileData": ("late.bin", b"x")})
    assert said(late) == 'A released firmware upgrade cannot change.'
    dup = raw("POST", "firmware", "/firmware-upgrade",
              json={"firmwareGuid": fw["newId"], "software": "1.0.0"})
    assert said(dup) == 'Software version already exists.'
    second = raw("POST", "firmware", "/firmware-upgrade",
                 json={"firmwareGuid": fw["newId"], "software": "1.1.0"}).json()["data"][0]
    assert set(second) == {"newId"}
    assert raw("GET", "firmware", "/firmware-upgrade").status_code == 412  # type required
    listed = raw("GET", "firmware", "/firmware-upgrade",
                 params={"firmwareguid": fw["newId"], "type": "Draft"}).json()
    assert [u["software"] for u in listed["data"]] == ["1.1.0"] and "createdby" in \
        listed["data"][0]
    server.emulator.state.limits.refuse_released_delete = True
    released = raw("DELETE", "firmware", f"/firmware-upgrade/{first}")
    assert said(released) == "Released firmware upgrade can not delete."  # AE swagger
    server.emulator.state.limits.refuse_released_delete = False
    third = raw("POST", "firmware", "/firmware-upgrade",
                json={"firmwareGuid": fw["newId"], "software": "1.2.0"}).json()["data"][0]
    assert raw("DELETE", "firmware", f"/firmware-upgrade/{third['newId']}").status_code == 200
    template2 = raw.template(code="tpl02", name="Second")
    fw2 = raw.firmware(template2, "FWTWO")
    last = raw("DELETE", "firmware", f"/firmware-upgrade/{fw2['firmwareUpgradeGuid']}")
    assert said(last) == "The only upgrade of a firmware cannot be deleted."
    single = raw("DELETE", "firmware", f"/firmware-upgrade/{fw2['firmwareUpgradeGuid']}",
                 params={"isDeleteSingleFirmware": "true"})
    assert single.status_code == 200


def test_files_list_delete_and_signed_download(raw: Raw) -> None:
    template = raw.template()
    fw = raw.firmware(template)
    ref = fw["firmwareUpgradeGuid"]
    # none yet: 200 with an empty list, as the live service answered (fidelity audit C6)
    empty = raw("GET", "file", f"/File/firmware/{ref}")
    assert empty.status_code == 200 and empty.json()["data"]["fileData"] == []
    item = raw("POST", "file", "/File", data={"fileRefGuid": ref, "ModuleType": "firmware",
                                              "Tag": "t1"},
               files={"fileData": ("fw.bin", b"payload")}).json()["data"][0]
    listed = raw("GET", "file", f"/File/firmware/{ref}").json()["data"]["fileData"]
    assert [f["tag"] for f in listed] == ["t1"]
    assert requests.get(listed[0]["file"], timeout=5).content == b"payload"
    assert requests.get(listed[0]["file"].replace("sig=", "sig=0"), timeout=5).status_code == 403
    assert raw("POST", "file", "/File", data={"fileRefGuid": ref, "ModuleType": "custom"},
               files={"fileData": ("x", b"x")}).status_code == 409
    assert raw("DELETE", "file", f"/File/firmware/{item['guid']}").status_code == 200
    assert raw("DELETE", "file", f"/File/firmware/{item['guid']}").status_code == 204


def test_paging_quirks(raw: Raw) -> None:
    assert raw("GET", "device", "/Device", params={"pageNumber": 0}).status_code == 500
    assert raw("GET", "device", "/Device", params={"sortBy": "displayName asc"}).status_code \
        == 204  # ignored, and the list is empty
    assert raw("GET", "device", "/Device", params={"sortBy": "guid asc"}).status_code == 412
    template = raw.template()
    assert raw("GET", "device", f"/template-attribute/{template}",
               params={"sortBy": "name asc"}).status_code == 412


def test_attribute_and_command_updates(raw: Raw) -> None:
    template = raw.template()
    types = {t["name"]: t["guid"] for t in
             raw("GET", "device", "/device-template/datatype").json()["data"]}
    new = raw("POST", "device", "/template-attribute", json={
        "localName": "humidity", "deviceTemplateGuid": template,
        "dataTypeGuid": types["INTEGER"]}).json()["data"][0]["newId"]
    assert raw("PUT", "device", f"/template-attribute/{new}", json={
        "localName": "humidity", "deviceTemplateGuid": template,
        "dataTypeGuid": types["DECIMAL"], "unit": "%"}).status_code == 200
    attrs = raw("GET", "device", f"/template-attribute/{template}").json()["data"]
    assert [(a["localName"], a["dataTypeName"], a["sequence"]) for a in attrs] == [
        ("temperature", "DECIMAL", 1), ("humidity", "DECIMAL", 2)]
    assert raw("POST", "device", "/template-attribute", json={
        "localName": "bad___name", "deviceTemplateGuid": template,
        "dataTypeGuid": types["INTEGER"]}).status_code == 412
    assert raw("DELETE", "device", f"/template-attribute/{new}").status_code == 200
    last = attrs[0]["guid"]
    assert said(raw("DELETE", "device", f"/template-attribute/{last}")) == \
        "A template must keep at least one attribute."
    cmd = raw("GET", "device", f"/template-command/{template}").json()["data"][0]
    assert set(cmd) == {"guid", "command", "name", "requiredParam", "requiredAck",
                        "isOTACommand", "isTemplateCommandUsed", "updatedDate", "createdDate",
                        "tag"}
    assert raw("PUT", "device", f"/template-command/{cmd['guid']}", json={
        "name": "Restart", "deviceTemplateGuid": template, "command": "reboot",
        "requiredParam": False, "requiredAck": False}).status_code == 200
    assert raw("PUT", "device", f"/device-template/{template}", json={"name": "Renamed"}) \
        .json()["data"] == [{}]


def test_entity_create_and_user_reads(raw: Raw) -> None:
    root = raw.root()
    made = raw("POST", "user", "/Entity", json={"name": "Plant-C", "parentEntityGuid": root})
    assert made.status_code == 200 and made.json()["data"][0]["entityGuid"]
    assert raw("POST", "user", "/Entity", json={"name": "Plant-C", "parentEntityGuid": root}) \
        .status_code == 409
    email = raw.server.emulator.state.account.user_email
    avail = raw("GET", "user", f"/User/{email}/availability").json()["data"][0]
    detail = raw("GET", "user", f"/User/{avail['guid']}").json()["data"][0]
    assert detail["userGuid"] == avail["guid"] and detail["companyCpid"]
    assert raw("GET", "user", "/User/nobody@example.com/availability").status_code == 204
    assert raw("GET", "user", "/User/00000000-0000-0000-0000-000000000000").status_code == 404


def test_ota_and_telemetry(raw: Raw) -> None:
    template = raw.template()
    dev = raw.device(template, "dev-1").json()["data"][0]["newid"]
    fw = raw.firmware(template)
    ref = fw["firmwareUpgradeGuid"]
    raw("POST", "file", "/File", data={"fileRefGuid": ref, "ModuleType": "firmware"},
        files={"fileData": ("fw.bin", b"abc")})
    to_entity = {"firmwareUpgradeGuid": ref, "isForceUpdate": False, "target": 1,
                 "entityGuid": raw.root()}
    assert raw("POST", "firmware", "/ota-update", json=to_entity).status_code == 409  # draft
    trial = {"firmwareUpgradeGuid": ref, "isForceUpdate": False, "target": 3,
             "deviceGuids": [dev], "isTrialDraft": True}
    pushed = raw("POST", "firmware", "/ota-update", json=trial).json()["data"]
    assert pushed[0]["deviceGuid"] == dev.upper()
    assert raw("POST", "firmware", "/ota-update", json={**trial, "scheduledOn":
                                                        "2001-01-01 00:00:00"}).status_code == 409
    assert raw("GET", "telemetry", f"/Telemetry/device/{dev}").status_code == 204
    assert raw("POST", "telemetry", "/Telemetry/device/dev-1/recent/5").status_code == 412
    assert raw("POST", "telemetry", "/Telemetry/device/dev-1/recent/10").json()["data"][
        "feed"] == []
    assert raw("GET", "telemetry", "/Telemetry/attribute-history/device/dev-1/from/"
               "2026-01-01/to/2026-01-20").status_code == 412


def test_state_persists_in_a_sqlite_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "emu.db")
    with EmulatorServer(db=db) as first:
        Raw(first).template()
        key = first.emulator.state.account.solution_key
    with EmulatorServer(db=db) as second:
        assert second.emulator.state.account.solution_key == key
        assert Raw(second)("GET", "device", "/device-template/template-code/sensor01") \
            .status_code == 200


def test_control_endpoints_reset_dump_and_count(server: EmulatorServer) -> None:
    raw = Raw(server)
    raw.template()
    dump = requests.get(server.url + "/_emulator/state", timeout=5).json()
    assert [t["code"] for t in dump["template"]] == ["sensor01"]
    assert "passwordHash" not in dump["user"][0] and "refreshtoken" not in dump
    stats = requests.get(server.url + "/_emulator/stats", timeout=5).json()
    assert stats["requests"]["POST /device-template/quick"] == 1
    requests.post(server.url + "/_emulator/reset", timeout=5)
    assert "template" not in requests.get(server.url + "/_emulator/state", timeout=5).json()
    seeded = requests.post(server.url + "/_emulator/seed", timeout=5,
                           json={"cpid": "ABCDEF", "child_entities": ["North"]}).json()
    assert seeded["account"]["cpid"] == "ABCDEF" and "user_password" not in seeded["account"]
    names = [e["name"] for e in Raw(server)("GET", "user", "/Entity").json()["data"]]
    assert names == ["Emulated Company", "North"]


def test_guid_seed_makes_guids_repeatable() -> None:
    with EmulatorServer(limits=Limits(guid_seed=7)) as a, \
            EmulatorServer(limits=Limits(guid_seed=7)) as b:
        assert Raw(a).template() == Raw(b).template()


def test_malformed_requests_get_the_service_envelope_never_a_crash_page(
        server: EmulatorServer, raw: Raw) -> None:
    """Huge or non-integer numbers, bodies of the wrong shape or size: 400/412/413 JSON."""
    cases = [
        ("GET", "device", "/Device?pageNumber=100000000000000000000", None, 412),
        ("GET", "device", "/Device?pageSize=1e20", None, 412),
        ("GET", "device", "/Device?pageSize=%C2%B2", None, 412),  # '²' passes isdigit
        ("GET", "firmware", "/Firmware?pageNumber=99999999999999999999", None, 412),
        ("GET", "device", "/device-template?AuthType=x", None, 412),
        ("POST", "device", "/Device", {"uniqueId": ["x"], "displayName": {"a": 1}}, None),
    ]
    for method, service, path, body, status in cases:
        resp = raw(method, service, path, json=body)
        assert resp.headers["Content-Type"].startswith("application/json"), (path, resp.text)
        assert resp.status_code in ((status,) if status else (400, 409, 412)), (path, resp.text)
        assert resp.json()["status"] == resp.status_code
    huge = raw("POST", "device", "/Device", data=b"{" + b" " * 30_000_001 + b"}",
                    headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["status"] == 413
    template = json.dumps({**TEMPLATE_JSON, "code": "inf01", "authType": float("inf")})
    resp = raw("POST", "device", "/device-template/quick",
               files={"file": ("t.json", template.replace("Infinity", "1e400").encode())})
    assert resp.status_code == 400 and resp.json()["status"] == 400  # a JSON type it cannot bind
    for knobs in ({"latency_ms": "x"}, {"token_lifetime": "x"}, {"hang_seconds": None,
                  "rate_limit": "fast"}, {"max_page_size": -1}, [1, 2]):
        resp = requests.put(f"{server.url}/_emulator/knobs", json=knobs, timeout=5)
        assert resp.status_code == 400, (knobs, resp.text)
    typo = requests.put(f"{server.url}/_emulator/knobs", json={"latency": 20}, timeout=5)
    assert typo.status_code == 400 and typo.text.startswith("unknown knob(s): latency (known:")
    server.emulator.unreadable.clear()  # the POST above was meant to be unreadable


def test_sources_settle_the_rules(raw: Raw) -> None:
    """The fidelity audit's citations C2, C4, C7, C10 and C11, each as its source says."""
    # C2: KLIKA's soundgener template (accepted on AWS-POC) has no `wireless`, attributes
    # without `aggregateTypes` and an extra `isIotEdgeEnable`
    klika = {k: v for k, v in TEMPLATE_JSON.items() if k != "wireless"}
    klika.update(code="sound01", name="Sound", isIotEdgeEnable=False,
                 attributes=[{"name": "level", "type": "DECIMAL", "unit": "dB"}])
    made = raw("POST", "device", "/device-template/quick",
               files={"file": ("t.json", json.dumps(klika).encode())})
    assert made.status_code == 200, made.text
    template = raw.template()
    # C11: the device detail carries its creation date (AWS DeviceInformation)
    child = next(e["guid"] for e in raw("GET", "user", "/Entity").json()["data"]
                 if e["parentEntityGuid"] is not None)
    dev = raw.device(template, "dev-1", entityGuid=child).json()["data"][0]["newid"]
    detail = raw("GET", "device", "/Device/uniqueId/dev-1").json()["data"][0]
    assert detail["createdDate"]
    # C4: a file uploaded without a Tag keeps none (the official client computes the MD5)
    fw = raw.firmware(template)
    ref = fw["firmwareUpgradeGuid"]
    raw("POST", "file", "/File", data={"fileRefGuid": ref, "ModuleType": "firmware"},
        files={"fileData": ("fw.bin", b"abc")})
    listed = raw("GET", "file", f"/File/firmware/{ref}").json()["data"]["fileData"]
    assert [f["tag"] for f in listed] == [None]
    # C7: an OTA to an entity reaches the devices of its sub-entities (PKG lib/ota.py:20)
    assert raw("PUT", "firmware", f"/firmware-upgrade/{ref}/publish").status_code == 200
    to_root = {"firmwareUpgradeGuid": ref, "isForceUpdate": False, "target": 1,
               "entityGuid": raw.root()}
    pushed = raw("POST", "firmware", "/ota-update", json=to_root).json()["data"]
    assert [p["deviceGuid"] for p in pushed] == [dev.upper()]
    # C10: a firmware can be renamed (AZ FirmwareUpdateV2Request), not onto a name in use
    other = raw.firmware(raw.template(code="other01", name="Other"), name="OTHERFW")
    body = {"firmwareName": "SENSFW2", "hardware": "1.0"}
    assert raw("PUT", "firmware", f"/Firmware/{fw['newId']}", json=body).status_code == 200
    taken = raw("PUT", "firmware", f"/Firmware/{other['newId']}",
                json={**body, "hardware": "1.0"})
    assert taken.status_code == 409 and "already exists" in taken.json()["message"]
    names = sorted(f["name"] for f in raw("GET", "firmware", "/Firmware").json()["data"])
    assert names == ["OTHERFW", "SENSFW2"]


def test_files_may_hang_off_any_reference(raw: Raw) -> None:
    """OLD tests/storage.py uploads a firmware file to an arbitrary app GUID, live, and
    lists it (fidelity audit C5); an upgrade's files still freeze when it is released."""
    ref = "8BBEEDCD-0000-4000-8000-000000000001"
    up = raw("POST", "file", "/File", data={"fileRefGuid": ref, "ModuleType": "firmware",
                                            "Tag": "t"}, files={"fileData": ("a.bin", b"a")})
    assert up.status_code == 200, up.text
    listed = raw("GET", "file", f"/File/firmware/{ref}").json()["data"]["fileData"]
    assert [f["name"] for f in listed] == ["a.bin"]


def test_the_servers_request_stream_keeps_cheroots_contract() -> None:
    """The emulator's own reader under cheroot (cheroot's reads through pure-Python `_pyio`):
    lines and sized reads across the socket's chunks, a line cut at its size, what is
    buffered (a pipelined request) said by has_data, every byte counted, the end of the
    stream an empty read."""
    import socket

    from iotc_apply.emulator.server import _makefile

    ours, peer = socket.socketpair()
    with ours, peer:
        reader = _makefile(ours, "rb", 8192)
        peer.sendall(b"GET / HTTP/1.1\r\nHost: x")
        peer.sendall(b"\r\n\r\nBODY0123456789GET /next")
        assert reader.readline() == b"GET / HTTP/1.1\r\n"  # type: ignore[union-attr]
        assert reader.readline(4) == b"Host"  # type: ignore[union-attr]
        assert reader.readline() == b": x\r\n"  # type: ignore[union-attr]
        assert reader.readline() == b"\r\n"  # type: ignore[union-attr]
        assert reader.read(14) == b"BODY0123456789"  # type: ignore[union-attr]
        assert reader.has_data()  # type: ignore[union-attr]
        peer.shutdown(socket.SHUT_WR)
        assert reader.readline() == b"GET /next"  # type: ignore[union-attr]
        assert not reader.has_data() and reader.read(10) == b""  # type: ignore[union-attr]
        assert reader.bytes_read == 50  # type: ignore[union-attr]
        writer = _makefile(ours, "wb", 8192)
        assert writer.write(b"HTTP/1.1 200 OK\r\n") == 17  # type: ignore[union-attr]
        assert peer.recv(100) == b"HTTP/1.1 200 OK\r\n"
