"""`iotc export`: the round trip (export, validate, plan: 0 errors, 0 changes) and its refusals."""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from iotc_apply.cli import main
from iotc_apply.client import FIRMWARE_MODULE, IoTConnect
from iotc_apply.emulator import EmulatorServer
from iotc_apply.keystore import KeyStore, common_name, device_config

from .support import account_keys, iotc, self_signed_pem, template


def round_trip(capsys: pytest.CaptureFixture[str], *match: str) -> dict[str, int]:
    """Export into `out`, then validate and plan it: both must find nothing to do."""
    args = [a for g in match for a in ("--match", g)]
    assert iotc("export", "out", *args) == 0
    exported = capsys.readouterr().out
    assert main(["validate", "out"]) == 0, capsys.readouterr()
    assert "Valid: " in capsys.readouterr().out
    assert iotc("plan", "out", "--detailed-exitcode") == 0, capsys.readouterr().out
    assert "No changes." in capsys.readouterr().out
    assert not list(Path("out").rglob("*.pem")) and not list(Path("out").rglob("*key*"))
    kinds: dict[str, int] = {}
    for file in Path("out").glob("*.yaml"):
        for doc in yaml.safe_load_all(file.read_text()):
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    kinds["_line"] = len(exported)  # the summary line was printed
    return kinds


@pytest.mark.usefixtures("applied")
def test_the_applied_examples_export_and_plan_clean(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    capsys.readouterr()
    kinds = round_trip(capsys)
    assert kinds["Template"] == 2 and kinds["Firmware"] == 1
    assert kinds["DeviceSet"] == 3 and kinds["Device"] == 3  # 60 devices, 6 documents
    header = Path("out/templates.yaml").read_text().splitlines()[0]
    assert header.startswith("# Exported by iotc export from aws/poc cpId ")
    # the upgrade files came back byte for byte
    for version in ("1.0.0", "1.1.0"):
        assert Path(f"out/files/SENSORFW/{version}/sensor-{version}.bin").read_bytes() == \
            Path(f"m/firmware/sensor-{version}.bin").read_bytes()


@pytest.mark.usefixtures("applied")
def test_a_part_of_the_account_exports_with_the_templates_it_needs(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    capsys.readouterr()
    kinds = round_trip(capsys, "device/gw-*")
    del kinds["_line"]
    assert kinds == {"Template": 1, "DeviceSet": 1}  # gw-0001..3, and gateway01 for them
    assert "gateway01" in Path("out/templates.yaml").read_text()
    assert "sensor01" not in Path("out/templates.yaml").read_text()


def _hand_made_account(api: IoTConnect, keys: KeyStore, server: EmulatorServer) -> int:
    """2,000 devices as scripts leave an account: templates, firmware and files made
    through the client layer; the devices through the emulator's own rules for `POST
    /Device` and `PUT /Device/{guid}/status` (the same records, without 2,000 HTTP round
    trips served and sent by this one process: the test took 9 s of CPU, now 3 s)."""
    rng = random.Random(7)
    rules = server.emulator.state.devices
    me = api.session.identity()
    entities = {e.name: e.guid for e in api.entities.list()}
    root = api.entities.root().guid
    sensor = api.templates.create(template("sensor01"))
    meter = api.templates.create(template("meter01", "Meter", auth_type="ca-signed"))
    jobs = []
    gaps = set(rng.sample(range(1, 801), 25))
    for i in range(1, 801):  # a padded sequence with gaps, keys kept: sets
        if i not in gaps:
            jobs.append((sensor, f"sen-{i:04d}", f"Sensor {i}", "Plant-A", i % 97 != 0, True))
    for i in range(1, 301):  # a second pattern on the same template, unpadded
        jobs.append((sensor, f"node{i}", f"Node #{i:03d}", "Plant-B", True, True))
    for name in ("boiler-room", "spare", "x-99-a", "node-x", "sen-a"):  # odd ones out
        jobs.append((sensor, name, name.title(), None, True, True))
    for i in range(1, 31):  # scripts' devices whose keys are elsewhere: external
        jobs.append((sensor, f"ext-{i:02d}", f"ext-{i:02d}", None, True, False))
    count = 2000 - len(jobs)
    for i in range(1, count + 1):  # CA-signed: no certificate, display name = DUID
        jobs.append((meter, f"meter-{i:05d}", f"meter-{i:05d}",
                     "Plant-A" if i <= count // 2 else None, i % 400 != 0, False))

    def create(job: tuple[str, str, str, str | None, bool, bool]) -> None:
        template, duid, display, entity, active, kept = job
        pem = None
        if template == sensor:
            pem = keys.ensure(duid, common_name(duid, me.cpid, me.dedicated), device_config(
                duid, me.cpid, me.env, me.pf, me.dedicated)).certificate_pem if kept \
                else self_signed_pem(duid)
        record, _ = rules.create_device({
            "deviceTemplateGuid": template, "uniqueId": duid, "displayName": display,
            "entityGuid": entities[entity] if entity else root,
            **({"certificateText": pem} if pem else {})})
        if not active:
            rules.set_device_status(record["guid"], {"isActive": False})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, jobs))
    fw, first = api.firmware.create(sensor, "SENSORFW", "1.0", "1.0.0", "Sensor firmware",
                                    "First")
    api.files.upload(FIRMWARE_MODULE, first, "a.bin", b"released bits")
    api.firmware.publish(first)
    draft = api.firmware.create_upgrade(fw, "1.1.0", "Next")
    api.files.upload(FIRMWARE_MODULE, draft, "b.bin", b"draft bits")
    api.files.upload(FIRMWARE_MODULE, draft, "c.bin", b"more draft bits")
    api.firmware.create(meter, "METERFW", "2.0", "0.9")
    return len(jobs)


@pytest.mark.slow
def test_a_hand_made_account_of_2000_devices_exports_and_plans_clean(
        work: Path, server: EmulatorServer, api: IoTConnect,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    assert _hand_made_account(api, KeyStore(account_keys(server, work / "keys")),
                              server) == 2000
    kinds = round_trip(capsys)
    documents = kinds.get("Device", 0) + kinds.get("DeviceSet", 0)
    print(f"\n2,000 devices exported as {kinds.get('DeviceSet', 0)} DeviceSet(s) and "
          f"{kinds.get('Device', 0)} Device document(s): {documents} documents")
    assert documents < 200
    externals = [d for f in Path("out").glob("devices-*.yaml")
                 for d in yaml.safe_load_all(f.read_text())
                 if d["spec"].get("certificate") == "external"]
    assert sorted(d["metadata"]["name"] for d in externals) == \
        [f"ext-{i:02d}" for i in range(1, 31)]


def test_external_devices_refuse_what_would_recreate_them(
        work: Path, server: EmulatorServer, api: IoTConnect,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    sensor = api.templates.create(template("sensor01"))
    api.devices.create(sensor, "ext-01", "ext-01", api.entities.root().guid,
                       self_signed_pem("ext-01"))
    round_trip(capsys)
    devices = Path("out/devices-sensor01.yaml")
    devices.write_text(devices.read_text().replace("name: ext-01", "name: ext-02"))
    assert iotc("plan", "out") == 1
    assert "device/ext-02: certificate is external (the device holds its own key) and it " \
           "does not exist" in capsys.readouterr().out


def test_export_refusals_are_one_line(
        work: Path, server: EmulatorServer, api: IoTConnect,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    Path("busy").mkdir()
    Path("busy/note.txt").write_text("mine")
    Path("afile").write_text("x")
    for args, message in ((["busy"], "busy is not empty; pass --force to write into it"),
                          (["afile"], "afile is a file; give a folder to export into"),
                          (["o2", "--match", "entity/*"],
                           "--match 'entity/*': an address glob names its kind")):
        assert iotc("export", *args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    sensor = api.templates.create(template("sensor01"))
    fw, first = api.firmware.create(sensor, "SENSORFW", "1.0", "1.0.0")
    api.files.upload(FIRMWARE_MODULE, first, "a.bin", b"bits",
                     tag=hashlib.md5(b"other bits").hexdigest())
    assert iotc("export", "o3") == 1
    assert "files/SENSORFW/1.0.0/a.bin: downloaded content has MD5 " in capsys.readouterr().err
    assert not Path("o3").exists()  # nothing written
    assert iotc("export", "busy", "--force") == 1  # same file, same refusal, even with force
    assert Path("busy/note.txt").read_text() == "mine"


def test_the_seed_account_exports_and_plans_clean(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    kinds = round_trip(capsys)
    del kinds["_line"]
    assert kinds == {} and Path("out/templates.yaml").read_text().startswith("# Exported by")


@pytest.mark.usefixtures("applied")
def test_a_partial_export_plans_clean_and_says_what_it_left_alone(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--match` takes 9 of the sensor template's devices: the export's Project lists the
    others under ignore, so its plan exits 0 (--detailed-exitcode) and counts them; a name
    taken off the list is a `?` line with the three ways out (issue 27)."""
    capsys.readouterr()
    kinds = round_trip(capsys, "device/lt-000*")
    assert kinds["Project"] == 1
    project = yaml.safe_load(Path("out/project.yaml").read_text())
    left = project["spec"]["ignore"]["devices"]
    assert "lt-0010" in left and "th-lab-01" in left and "lt-0001" not in left
    assert iotc("plan", "out") == 0
    out = capsys.readouterr().out
    assert f"{len(left)} undeclared device(s) on declared templates left alone " \
           "(Project.spec.ignore)." in out and "\n? " not in out
    Path("out/project.yaml").write_text(Path("out/project.yaml").read_text().replace(
        "    - lt-0010\n", ""))
    assert iotc("plan", "out", "--detailed-exitcode") == 2
    out = capsys.readouterr().out
    assert "? device/lt-0010" in out and "not in the manifests" in out
    assert "? bring them in: iotc export DIR --match 'device/lt-0010'; leave them alone: " \
           "Project.spec.ignore; delete them: Project.spec.prune" in out
