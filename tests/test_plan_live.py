"""Plans against the emulator: request counts, plan files without secrets, staleness."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from iotc_apply import snapshot
from iotc_apply.cli import main
from iotc_apply.client import IoTConnect
from iotc_apply.client.session import ApiSession
from iotc_apply.emulator import EmulatorServer
from iotc_apply.keystore import KeyStore
from iotc_apply.manifest import load
from iotc_apply.model import Address, DesiredFirmware, DesiredTemplate
from iotc_apply.plan import make_plan, planfile

from .fleet import seed
from .support import point_cli_at

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "manifests"
TEMPLATE = """apiVersion: iotc/v1
kind: Template
metadata: {{name: bulk{n}}}
spec:
  name: Bulk {n}
  authType: ca-signed
  attributes: [{{name: level, type: INTEGER}}]
"""
DEVICE_SET = """apiVersion: iotc/v1
kind: DeviceSet
metadata: {{name: bulk{n}}}
spec: {{count: {count}, uniqueId: "b{n}-{{index:05}}", template: bulk{n}}}
"""
FIRMWARE = """apiVersion: iotc/v1
kind: Firmware
metadata: {name: BULKFW}
spec:
  template: bulk1
  hardware: "1"
  upgrades:
    - {version: "1.0", files: [a.bin], release: true}
    - {version: "1.1", files: [a.bin]}
"""


def bulk_fleet(server: EmulatorServer, api: IoTConnect, folder: Path, per_template: int,
               templates: int = 2) -> None:
    """CA-signed devices written straight into the emulator (their seeding is not under
    test), templates and firmware through the client, and the manifests declaring them."""
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"image")
    for n in range(1, templates + 1):
        (folder / f"bulk{n}.yaml").write_text(TEMPLATE.format(n=n))
    (folder / "fw.yaml").write_text(FIRMWARE)
    seed(api, folder, KeyStore(folder / "unused"))  # templates and firmware only
    for n in range(1, templates + 1):
        (folder / f"set{n}.yaml").write_text(DEVICE_SET.format(n=n, count=per_template))
    state = server.emulator.state
    root = state.accounts.root_entity()["guid"]
    for t in api.templates.list():
        for i in range(1, per_template + 1):
            state.devices.create_device({"deviceTemplateGuid": t.guid, "uniqueId": f"b{t.code[-1]}-"
                                 f"{i:05d}", "displayName": f"b{t.code[-1]}-{i:05d}",
                                 "entityGuid": root})


def test_plan_of_2000_devices_stays_within_the_request_bound(
        server: EmulatorServer, api: IoTConnect, tmp_path: Path) -> None:
    bulk_fleet(server, api, tmp_path / "m", per_template=1_000)
    desired = load([str(tmp_path / "m")]).desired
    server.emulator.traffic.reset_counts()

    fresh = IoTConnect(ApiSession(api.session.settings, api.session.store))
    snap = snapshot.take(fresh, [t.code for t in desired.of(DesiredTemplate)],
                         [f.name for f in desired.of(DesiredFirmware)], page_size=100)
    plan = make_plan(desired, snap)

    counts = server.emulator.traffic.counts
    n, t, f, u, p = 2_000, 2, 1, 2, 100
    assert len(snap.devices) == n and plan.changes == () and plan.unchanged == n + t + f + u
    assert counts["GET /Device"] == 2 * (math.ceil(1_000 / p) + 1)  # one listing per template
    assert sum(counts.values()) <= math.ceil(n / p) + 4 * t + 2 * f + u + 10, dict(counts)


SECRETS = [re.compile(r"eyJ[A-Za-z0-9_-]{8,}\."), re.compile("PRIVATE KEY"),
           re.compile("Emulator!234"), re.compile(r"(?i)refresh_?token")]


def test_plan_file_holds_no_secret_and_a_stale_plan_is_detected(
        server: EmulatorServer, api: IoTConnect, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeyStore(tmp_path / "keys")
    seed(api, EXAMPLES, keys)
    point_cli_at(server, tmp_path / "config", monkeypatch)
    manifests = tmp_path / "m"
    shutil.copytree(EXAMPLES, manifests)
    devices = manifests / "devices.yaml"
    devices.write_text(devices.read_text().replace("Lab sensor 1\n", "Lab sensor one\n"))
    out = tmp_path / "plan.json"
    assert main(["plan", str(manifests), "--out", str(out), "--detailed-exitcode",
                 "--keys-dir", str(keys.root)]) == 2
    text = out.read_text()
    for pattern in SECRETS:
        assert not pattern.search(text), pattern.pattern
    plan, _ = planfile.read(out)
    assert [str(c.address) for c in plan.changes] == ["device/th-lab-01"]
    assert plan.changes[0].before and plan.changes[0].before["guid"]  # for the executor

    def fresh() -> dict[str, str]:
        snap = snapshot.take(api, ["gateway01", "sensor01"], ["SENSORFW"])
        return {a: snap.fingerprint(Address.parse(a)) for a in plan.fingerprint}

    assert planfile.stale(plan, fresh()) == []
    gw = api.devices.get_by_duid("gw-0002")
    assert gw is not None
    api.devices.update(gw.guid, "gw-0002", "Renamed behind our back", api.entities.root().guid)
    assert planfile.stale(plan, fresh()) == ["device/gw-0002"]
