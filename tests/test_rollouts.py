"""Firmware rollouts (issue 31): waves decided from the account's OTA records alone, one wave
pushed per apply, gates, soak, abort, pause, no duplicates after a crash, targets that move,
unreleased upgrades refused; with the emulator's OTA outcomes and clock."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import requests

from iotc_apply.emulator import EmulatorServer

from .support import iotc, live

FIRMWARE_FILE = b"\x7fELF rollout test image\n"


def _fleet(root: Path, devices: int, rollout: str, entity: str = "Plant-A",
           release: bool = True) -> Path:
    folder = root / "m"
    if not (folder / "rollout.yaml").exists():  # `work` holds the examples: start clean
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    (folder / "fw.bin").write_bytes(FIRMWARE_FILE)
    (folder / "fleet.yaml").write_text(f"""\
apiVersion: iotc/v1
kind: Template
metadata: {{name: roll01}}
spec:
  name: Rollout sensor
  authType: self-signed
  attributes: [{{name: temperature, type: DECIMAL}}]
---
apiVersion: iotc/v1
kind: DeviceSet
metadata: {{name: rollset}}
spec: {{count: {devices}, uniqueId: "rd-{{index:03}}", template: roll01, entity: {entity}}}
---
apiVersion: iotc/v1
kind: Firmware
metadata: {{name: ROLLFW}}
spec:
  template: roll01
  hardware: "1.0"
  upgrades:
    - {{version: 1.0.0, files: [fw.bin], release: {str(release).lower()}}}
""")
    (folder / "rollout.yaml").write_text(rollout)
    return folder


def _rollout(waves: str, extra: str = "", targets: str = "{template: roll01}") -> str:
    return f"""\
apiVersion: iotc/v1
kind: Rollout
metadata: {{name: rfw-1-0-0}}
spec:
  upgrade: {{firmware: ROLLFW, version: "1.0.0"}}
  targets: {targets}
  waves: {waves}
{extra}"""


def _knobs(server: EmulatorServer, **knobs: object) -> None:
    assert requests.put(server.url + "/_emulator/knobs", json=knobs, timeout=5).ok


def _advance(server: EmulatorServer, seconds: float) -> None:
    assert requests.post(server.url + "/_emulator/clock", json={"advance_s": seconds},
                         timeout=5).ok


def _plan(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert iotc("plan", "m", "--format", "json") in (0, 1)
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _decision(capsys: pytest.CaptureFixture[str]) -> str:
    (rollout,) = _plan(capsys)["rollouts"]
    return str(rollout["decision"])


def _pushed(server: EmulatorServer) -> list[str]:
    """Every device GUID of every OTA update the emulator was sent, in order."""
    return [d for ota in live(server).get("ota", []) for d in ota["devices"]]


def test_a_200_device_rollout_completes_over_four_waves(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 200, _rollout("[1, 10%, 50%, 100%]", "  gate: {success: 90%, soak: 30m}\n"))
    _knobs(server, ota_delay_s=600)
    assert "the upgrade is released by this apply" in _decision(capsys)
    assert iotc("apply", "m", "--auto-approve") == 0  # the fleet; the upgrade released now
    sizes = []
    for wave in range(1, 5):
        plan = _plan(capsys)
        pushes = [c for c in plan["changes"] if c["action"] == "push"]
        assert len(pushes) == 1, (wave, plan["rollouts"][0]["decision"], live(server).get("ota"))
        (push,) = pushes
        assert push["note"] == plan["rollouts"][0]["decision"] == \
            f"push wave {wave} ({len(push['after']['devices'])} device(s))"
        sizes.append(len(push["after"]["devices"]))
        assert iotc("apply", "m", "--auto-approve") == 0
        assert re.search(rf"pushed wave {wave} to \d+ device\(s\)", capsys.readouterr().out)
        assert _decision(capsys).startswith(f"wait: wave {wave} in progress")
        _advance(server, 600)  # the OTA finishes
        if wave < 4:
            assert _decision(capsys).startswith(f"wait: wave {wave} soaking until ")
            _advance(server, 1860)  # past the soak (the Date header counts whole seconds)
    assert sizes == [1, 19, 80, 100]
    assert _decision(capsys) == "complete"
    pushed = _pushed(server)
    assert len(pushed) == len(set(pushed)) == 200  # every device once
    table = _plan(capsys)["rollouts"][0]["waves"]
    assert [(w["devices"], w["success"], w["failed"]) for w in table] == [
        (1, 1, 0), (19, 19, 0), (80, 80, 0), (100, 100, 0)]
    capsys.readouterr()
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    out = capsys.readouterr().out
    assert "rollout/rfw-1-0-0: ROLLFW 1.0.0 to 200 device(s): complete" in out


def test_failures_past_the_abort_share_halt_the_rollout(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 40, _rollout("[10, 100%]", "  gate: {success: 50%}\n  abort: {failed: 20%}\n"))
    _knobs(server, ota_success_rate=0.5, fault_seed=7)
    assert iotc("apply", "m", "--auto-approve") == 0
    assert iotc("apply", "m", "--auto-approve") == 0  # wave 1: 10 devices
    decision = _decision(capsys)
    failed = int(re.match(r"halted: (\d+) of 10 pushed device\(s\) failed \(abort at 20%\)",
                          decision)[1])  # type: ignore[index]
    assert 2 <= failed <= 8  # a seeded half
    capsys.readouterr()
    assert iotc("apply", "m", "--auto-approve") == 0
    assert len(_pushed(server)) == 10  # nothing further
    assert "halted" in capsys.readouterr().out


def test_pause_and_resume(work: Path, server: EmulatorServer,
                          capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 10, _rollout("[2, 100%]", "  paused: true\n"))
    assert iotc("apply", "m", "--auto-approve") == 0
    assert iotc("apply", "m", "--auto-approve") == 0
    assert _decision(capsys) == "paused before wave 1" and _pushed(server) == []
    rollout = work / "m" / "rollout.yaml"
    rollout.write_text(rollout.read_text().replace("paused: true", "paused: false"))
    assert _decision(capsys) == "push wave 1 (2 device(s))"
    assert iotc("apply", "m", "--auto-approve") == 0
    assert len(_pushed(server)) == 2


def test_a_rerun_after_a_crash_between_push_and_read_back_pushes_no_duplicates(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The push went out, the process died before reading back: a saved plan of that wave
    (or a plan made before the crash) is stale, and a re-run finds the devices pending."""
    _fleet(work, 10, _rollout("[5, 100%]"))
    _knobs(server, ota_delay_s=600)
    assert iotc("apply", "m", "--auto-approve") == 0
    assert iotc("plan", "m", "--out", "wave1.json") == 0
    from iotc_apply.apply.actions import Actions
    from iotc_apply.keystore import KeyStore
    from iotc_apply.plan import planfile

    plan, _ = planfile.read(Path("wave1.json"))
    (push,) = [c for c in plan.changes if c.action.value == "push"]
    from iotc_apply.client import IoTConnect
    from iotc_apply.client.session import ApiSession
    from iotc_apply.client.settings import TokenStore

    from .support import settings_for

    settings = settings_for(server, work / "crash-config")
    api = IoTConnect(ApiSession(settings, TokenStore.for_settings(settings)))
    actions = Actions(api, KeyStore(work / "crash-keys"), plan)
    assert actions.rollout_push(push) == "pushed wave 1 to 5 device(s)"
    # ... and the crash: no read-back. The same step again, and a whole re-run:
    assert actions.rollout_push(push) == "pushed wave 1 to 0 device(s) (5 already had it)"
    capsys.readouterr()
    assert iotc("apply", "wave1.json") == 1  # stale: the account moved on
    assert "run 'iotc plan' again" in capsys.readouterr().err
    assert iotc("apply", "m", "--auto-approve") == 0  # wave 1 pending: nothing to push
    assert len(_pushed(server)) == 5


def test_a_device_moved_out_of_the_targets_is_left_alone(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 6, _rollout("[2, 100%]", targets="{entity: Plant-A}"))
    _knobs(server, ota_delay_s=600)
    assert iotc("apply", "m", "--auto-approve") == 0
    assert _plan(capsys)["rollouts"][0]["targets"] == 6
    assert iotc("apply", "m", "--auto-approve") == 0  # wave 1 (2 devices), pending
    pushed = set(_pushed(server))
    by_duid = {d["uniqueId"]: d for d in live(server)["device"]}
    leaving = next(duid for duid in ("rd-006", "rd-001") if by_duid[duid]["guid"] not in pushed)
    fleet = work / "m" / "fleet.yaml"
    kept = "count: 5, start: 1" if leaving == "rd-006" else "count: 5, start: 2"
    fleet.write_text(fleet.read_text().replace("count: 6,", f"{kept},"))
    (work / "m" / "moved.yaml").write_text(f"""\
apiVersion: iotc/v1
kind: Device
metadata: {{name: {leaving}}}
spec: {{template: roll01, entity: Plant-B}}
""")
    assert iotc("apply", "m", "--auto-approve") == 0  # the move; wave 1 still pending
    _advance(server, 600)
    plan = _plan(capsys)
    assert plan["rollouts"][0]["targets"] == 5
    (push,) = [c for c in plan["changes"] if c["action"] == "push"]
    assert leaving not in {d["duid"] for d in push["after"]["devices"]}
    assert iotc("apply", "m", "--auto-approve") == 0
    assert by_duid[leaving]["guid"] not in _pushed(server)
    assert len(_pushed(server)) == 5


def test_a_rollout_of_an_unreleased_upgrade_is_a_plan_error(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 2, _rollout("[100%]"), release=False)
    capsys.readouterr()
    assert iotc("plan", "m") == 1
    out = capsys.readouterr().out
    assert "rollout.yaml:3:18: rollout/rfw-1-0-0: firmware ROLLFW upgrade 1.0.0 is not in " \
        "the account" in out
    assert iotc("apply", "m", "--auto-approve") == 1  # plan errors: nothing applied
    (work / "m" / "rollout.yaml").write_text("")
    assert iotc("apply", "m", "--auto-approve") == 0  # the draft exists now
    (work / "m" / "rollout.yaml").write_text(_rollout("[100%]"))
    capsys.readouterr()
    assert iotc("plan", "m") == 1
    assert "upgrade 1.0.0 is a draft; only a released upgrade is rolled out" in \
        capsys.readouterr().out


@pytest.mark.parametrize(("waves", "message"), [
    ("[2, 50%]", "the last wave is 50%; it must be 100% so the rollout reaches every target"),
    ("[50%, 10%, 100%]", "waves are cumulative"),
])
def test_waves_are_checked_where_they_are_written(tmp_path: Path, waves: str, message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.cli import main

    (tmp_path / "r.yaml").write_text(_rollout(waves))
    assert main(["validate", str(tmp_path / "r.yaml")]) == 1
    assert message in capsys.readouterr().err


def test_get_rollouts_lists_what_ota_pushed_of_each_upgrade(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 10, _rollout("[4, 100%]"))
    _knobs(server, ota_delay_s=600)
    assert iotc("apply", "m", "--auto-approve") == 0
    assert iotc("apply", "m", "--auto-approve") == 0  # wave 1: 4 devices, pending
    from iotc_apply.cli import main

    capsys.readouterr()
    assert main(["get", "rollouts", "-o", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert {k: row[k] for k in ("firmware", "version", "devices", "success", "failed",
                                "pending", "updates")} == {
        "firmware": "ROLLFW", "version": "1.0.0", "devices": 4, "success": 0, "failed": 0,
        "pending": 4, "updates": 1}
    _advance(server, 600)
    assert main(["get", "ota", "ROLLFW@*"]) == 0
    assert re.search(r"ROLLFW\s+1\.0\.0\s+4\s+4\s+0\s+0", capsys.readouterr().out)


def test_devices_already_on_the_version_and_windows_decide_without_a_request() -> None:
    """Pure decisions: a device the listing shows on the upgrade counts as done (never
    pushed); outside the rollout's windows it waits for the next one."""
    import datetime

    from iotc_apply.model import (
        ChangeWindow,
        DesiredRollout,
        Identity,
        LiveDevice,
        LiveFirmware,
        LiveTemplate,
        LiveUpgrade,
        Snapshot,
        Wave,
    )
    from iotc_apply.plan.rollouts import decide

    upgrade = LiveUpgrade("U-1", "1.0.0", False, None)
    snap = Snapshot(
        Identity("u", "U", "C", "CPID", "E", "aws", "poc", False), (),
        {"roll01": LiveTemplate("T-1", "roll01", "Roll", 1, "2.1")}, {},
        {f"rd-{i}": LiveDevice(f"D-{i}", f"rd-{i}", f"rd-{i}", "T-1", True, "Plant-A",
                                firmware_upgrade="U-1" if i < 3 else None)
         for i in range(10)},
        {"ROLLFW": LiveFirmware("F-1", "ROLLFW", "1.0", "T-1", "roll01", False, None,
                                (upgrade,))})
    rollout = DesiredRollout("r", "ROLLFW", "1.0.0", (Wave(count=3), Wave(percent=100)),
                             template="roll01")
    errors: list[str] = []
    now = datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC).timestamp()  # a Monday
    progress, change = decide(rollout, None, snap, now, lambda *a: errors.append(str(a)))
    assert not errors and change is not None
    assert {d["duid"] for d in change.after["devices"]}.isdisjoint({"rd-0", "rd-1", "rd-2"})
    assert sum(w.success for w in progress.waves) == 3
    weekend = ChangeWindow(frozenset({5, 6}), (0, 0), 1440, "UTC")
    progress, change = decide(dataclasses.replace(rollout, windows=(weekend,)), None, snap,
                              now, lambda *a: errors.append(str(a)))
    assert change is None and progress.decision == (
        "wait: outside the rollout's windows; next window opens Sat 2026-12-12 00:00 UTC")


@pytest.mark.parametrize(("targets", "message"), [
    ("{template: nosuch}", "targets.template 'nosuch' is not in the account"),
    ("{template: other01}", "targets.template 'other01' is not firmware ROLLFW's template "
                            "(roll01): an upgrade reaches only its own template's devices"),
    ("{entity: Plant-Z}", "targets.entity 'Plant-Z' is not in the account"),
])
def test_targets_that_can_never_match_are_plan_errors(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str],
        targets: str, message: str) -> None:
    folder = _fleet(work, 2, _rollout("[100%]", targets=targets))
    (folder / "other.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Template\nmetadata: {name: other01}\n"
        "spec: {name: Other, authType: self-signed, attributes: [{name: t, type: DECIMAL}]}\n")
    (folder / "rollout.yaml").rename(folder / "rollout.later")
    assert iotc("apply", "m", "--auto-approve") == 0
    (folder / "rollout.later").rename(folder / "rollout.yaml")
    capsys.readouterr()
    assert iotc("plan", "m") == 1
    assert f"rollout/rfw-1-0-0: {message}" in capsys.readouterr().out


def test_device_globs_that_match_nothing_say_so(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(work, 2, _rollout("[100%]", targets='{devices: ["rdx-*"]}'))
    assert iotc("apply", "m", "--auto-approve") == 0
    capsys.readouterr()
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    assert "warning: rollout/rfw-1-0-0: no device of the firmware's template matches the " \
        "targets; nothing is pushed" in capsys.readouterr().out


def test_the_ota_records_of_a_big_rollout_are_read_in_parallel() -> None:
    """A hundred OTA updates (10,000 devices in batches of 100) are read `parallelism` at a
    time, not one by one, and every item is kept."""
    import threading
    import time as clock

    from iotc_apply.model import LiveOtaItem
    from iotc_apply.snapshot import ota_items

    inflight, most, lock = [0], [0], threading.Lock()

    class Firmware:
        def ota_updates(self):  # type: ignore[no-untyped-def]
            return [(f"O-{i}", "U-1" if i % 2 == 0 else "U-2") for i in range(40)]

        def ota_items(self, ota):  # type: ignore[no-untyped-def]
            with lock:
                inflight[0] += 1
                most[0] = max(most[0], inflight[0])
            clock.sleep(0.02)
            with lock:
                inflight[0] -= 1
            return (LiveOtaItem(ota, f"D-{ota}", "pending"),)

    class Api:
        firmware = Firmware()

    found = ota_items(Api(), {"U-1"}, parallelism=8)  # type: ignore[arg-type]
    assert len(found["U-1"]) == 20 and most[0] > 1
