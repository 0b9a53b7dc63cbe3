"""The official `iotconnect-rest-api` 3.0.0 client's own flows, run against the emulator.

Run as a separate process (the official client keeps its configuration in module globals and
in a config file under $HOME): `python official_flow.py DISCOVERY_ROOT SKEY USER PASSWORD DIR`.
Its only adaptation is where the base URLs come from: the official client hard-codes the
public discovery host, so this script asks the emulator's discovery and sets the client's
endpoint globals from the answer. Prints `OFFICIAL FLOW OK` at the end.
"""

from __future__ import annotations

import json
import os
import sys

import requests
from avnet.iotconnect.restapi.lib import (
    accesstoken,
    apiurl,
    config,
    credentials,
    device,
    entity,
    firmware,
    storage,
    template,
    upgrade,
    user,
)
from avnet.iotconnect.restapi.lib.error import InvalidActionError

TEMPLATE = {
    "code": "offtpl01", "name": "Official Flow Template", "authType": 3,
    "attributes": [{"name": "temperature", "type": "DECIMAL", "description": "", "unit": "C",
                    "aggregateTypes": []},
                   {"name": "status", "type": "STRING", "description": "", "unit": "",
                    "aggregateTypes": []}],
    "commands": [{"name": "Reboot", "command": "reboot", "requiredParam": False,
                  "requiredAck": True, "isOTACommand": False}],
    "messageVersion": "2.1", "msgCode": "XG4EOIE", "greenGrass": "0", "wireless": "0",
    "properties": {"description": None, "dataFrequency": "60", "fileSupport": False},
    "_meta": {"version": "2.0"},
}


def configure(root: str, skey: str) -> None:
    answer = requests.get(f"{root}/api/uisdk/solutionkey/{skey}/env/poc",
                          params={"version": "2.1", "pf": "aws"}, timeout=10).json()["data"]
    apiurl.ep_auth = answer["authBaseUrl"]
    apiurl.ep_user = answer["userBaseUrl"]
    apiurl.ep_device = answer["deviceBaseUrl"]
    apiurl.ep_firmware = answer["firmwareBaseUrl"]
    apiurl.ep_file = answer["fileBaseUrl"]
    apiurl.ep_telemetry = answer["telemetryBaseUrl"]
    apiurl.ep_master = answer["masterBaseUrl"]
    apiurl.ep_event = answer["eventBaseUrl"]
    config.skey, config.pf, config.env = skey, "aws", "poc"


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"official flow failed: {what}")


def run(work: str, username: str, password: str) -> None:
    credentials.authenticate(username, password)
    me = user.get_own_user()
    check(me is not None and me.userId == username, "own user")
    check(me.companyCpid == accesstoken.decode_access_token().user.cpId, "cpId")
    root = entity.get_root_entity()
    check(root.parentEntityGuid is None, "root entity")

    path = os.path.join(work, "template.json")
    with open(path, "w") as f:
        json.dump(TEMPLATE, f)
    created = template.create(path)
    tpl = template.get_by_template_code("offtpl01")
    check(tpl is not None and tpl.guid == created.deviceTemplateGuid, "template lookup")
    check(template.get_by_guid(tpl.guid).templateName == "Official Flow Template", "by guid")
    check([a.localName for a in template.get_attributes(tpl.guid)] == ["temperature", "status"],
          "attributes")
    check([c.command for c in tpl.commands] == ["reboot"], "commands")
    check(any(t.guid == tpl.guid for t in template.query().all()), "template query")

    key_pem, cert_pem = config.generate_ec_cert_and_pkey("offdev01")
    result = device.create(template_guid=tpl.guid, duid="offdev01", device_certificate=cert_pem)
    check(result.uniqueId == "offdev01", "device create")
    dev = device.get_by_duid("offdev01")
    check(dev is not None and dev.guid.upper() == result.newid.upper(), "device lookup")
    check(device.get_by_guid(dev.guid).uniqueId == "offdev01", "device by guid")
    device.set_active_match_guid(dev.guid, False)
    check(device.get_by_duid("offdev01").isActive is False, "deactivate")
    listed = list(device.query(device.DeviceQuery(template=tpl.guid, page_size=5)).all())
    check([d.uniqueId for d in listed] == ["offdev01"], "device query")
    check(json.loads(config.generate_device_json("offdev01"))["uid"] == "offdev01", "json")

    fw_created = firmware.create(template_guid=tpl.guid, name="OFFFW01", hw_version="1.0",
                                 initial_sw_version="1.0.0", description="flow")
    fw_file = os.path.join(work, "fw-1.0.0.bin")
    with open(fw_file, "wb") as f:
        f.write(b"\x7fELF firmware image 1.0.0")
    upgrade.upload(fw_created.firmwareUpgradeGuid, fw_file)
    upgrade.publish(fw_created.firmwareUpgradeGuid)
    try:
        upgrade.publish(fw_created.firmwareUpgradeGuid)
        check(False, "publishing twice must fail")
    except InvalidActionError:
        pass
    second = upgrade.create(fw_created.newId, sw_version="1.1.0", description="second")
    storage.create(storage.FILE_MODULE_FIRMWARE, second.newId, fw_file)
    files = storage.get_files(storage.FILE_MODULE_FIRMWARE, second.newId)
    check(len(files) == 1 and files[0].tag == upgrade.util.file_md5(fw_file), "file tag")
    check(requests.get(files[0].file, timeout=10).content == b"\x7fELF firmware image 1.0.0",
          "signed download")

    fw = firmware.get_by_name("OFFFW01")
    check(fw is not None and fw.guid == fw_created.newId, "firmware by name")
    detail = firmware.get_by_guid(fw.guid)
    check(sorted(u.software for u in detail.Upgrades) == ["1.0.0", "1.1.0"], "upgrades")
    check(detail.release_count() == 1 and detail.draft_count() == 1, "release/draft counts")
    check(upgrade.get_by_guid(second.newId).software == "1.1.0", "upgrade by guid")
    check(len(list(upgrade.query(upgrade.UpgradeQuery(firmware=fw.guid)).all())) == 2,
          "upgrade query")

    # Tear down, as the official tests do.
    storage.delete_match_guid(storage.FILE_MODULE_FIRMWARE, files[0].guid)
    upgrade.delete_match_guid(second.newId)
    try:
        upgrade.delete_match_guid(fw_created.firmwareUpgradeGuid)
        check(False, "deleting the last upgrade must fail")
    except InvalidActionError:
        pass
    firmware.deprecate_match_guid(fw.guid)
    check(firmware.get_by_name("OFFFW01") is None, "deprecated firmware hidden")
    device.delete_match_duid("offdev01")
    check(device.get_by_duid("offdev01") is None, "device gone")
    template.delete_match_guid(tpl.guid)
    check(template.get_by_template_code("offtpl01") is None, "template gone")
    try:
        template.delete_match_guid(tpl.guid)
        check(False, "deleting a missing template must fail")
    except InvalidActionError:
        pass
    credentials.refresh()
    check(entity.get_root_entity().guid == root.guid, "calls after refresh")
    print("OFFICIAL FLOW OK")


if __name__ == "__main__":
    discovery_root, solution_key, login_user, login_password, workdir = sys.argv[1:6]
    configure(discovery_root, solution_key)
    run(workdir, login_user, login_password)
