"""End to end through the CLI against the emulator: apply, plan, edit, destroy, faults."""

from __future__ import annotations

import io
import os
import stat
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iotc_apply.apply.actions import Actions
from iotc_apply.apply.executor import Hooks, Status, execute
from iotc_apply.apply.graph import Step
from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer, FaultRule, Knobs
from iotc_apply.keystore import KeyStore

from .support import account_keys, iotc, live


def test_apply_plan_edit_apply_destroy(work: Path, server: EmulatorServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("apply", "m", "--auto-approve") == 0
    assert "Apply complete: 65 created" in capsys.readouterr().out
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    assert "No changes. 65 object(s) match the manifests." in capsys.readouterr().out

    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text().replace("Lab sensor 3\n", "Freezer sensor 3\n"))
    assert iotc("plan", "m", "--detailed-exitcode") == 2
    out = capsys.readouterr().out
    assert "~ device/th-lab-03" in out and '~ displayName: "Lab sensor 3" -> "Freezer ' \
        'sensor 3"' in out
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete; 64 unchanged." in out
    assert iotc("apply", "m", "--auto-approve") == 0
    assert iotc("plan", "m", "--detailed-exitcode") == 0

    assert iotc("destroy", "m", "--auto-approve") == 0
    assert "Destroy complete: 63 removed" in capsys.readouterr().out
    state = live(server)
    assert "template" not in state and "device" not in state and "attribute" not in state
    # firmware cannot be deleted, only deprecated: that is all that is left of the fleet
    assert [(f["name"], f["isDeprecated"]) for f in state["firmware"]] == [("SENSORFW", True)]
    assert [e["name"] for e in state["entity"]] == ["Emulated Company", "Plant-A", "Plant-B"]
    assert len(state["user"]) == 1

    capsys.readouterr()
    assert iotc("apply", "m", "--auto-approve") == 0  # the fleet comes back
    assert "a deprecated firmware has this name" in capsys.readouterr().out
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    assert sorted((f["name"], f["isDeprecated"]) for f in live(server)["firmware"]) == [
        ("SENSORFW", False), ("SENSORFW", True)]


def test_keys_are_private_reused_and_never_shown(work: Path, server: EmulatorServer,
                                                 api: IoTConnect,
                                                 capfd: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTC_API_TRACE", "1")
    assert iotc("apply", "m", "--auto-approve") == 0
    folder = account_keys(server, work / "keys") / "th-lab-01"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder / "key.pem").st_mode) == 0o600
    key_before = (folder / "key.pem").read_bytes()
    device = api.devices.get_by_duid("th-lab-01")
    assert device is not None
    api.devices.delete(device.guid)
    assert iotc("plan", "m", "--out", "plan.json") == 0
    assert iotc("apply", "plan.json") == 0
    assert (folder / "key.pem").read_bytes() == key_before
    registered = next(d for d in live(server)["device"] if d["uniqueId"] == "th-lab-01")
    cert = x509.load_pem_x509_certificate(registered["certificateText"].encode())
    key = serialization.load_pem_private_key(key_before, password=None)
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=0A1B2C3D4E5F60718293A4B5C6D7E8F9-th-lab-01"

    everything = capfd.readouterr()
    text = everything.out + everything.err + (work / "plan.json").read_text()
    assert "-> POST" in text  # the trace was on
    assert "PRIVATE KEY" not in text and "Emulator!234" not in text
    body = b"".join(key_before.splitlines()[1:-1]).decode()
    assert body[:40] not in text


@pytest.mark.usefixtures("applied")
def test_a_stale_saved_plan_is_refused(work: Path, api: IoTConnect,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text().replace("Lab sensor 2\n", "Lab sensor two\n"))
    assert iotc("plan", "m", "--out", "plan.json") == 0
    device = api.devices.get_by_duid("gw-0001")
    assert device is not None
    api.devices.set_active(device.guid, "gw-0001", False)
    capsys.readouterr()
    assert iotc("apply", "plan.json") == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: plan is stale: 1 object(s) changed since it was made " \
                  "(device/gw-0001); run 'iotc plan' again"


def test_apply_without_a_terminal_needs_auto_approve(work: Path, server: EmulatorServer,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert iotc("apply", "m") == 1
    assert "pass --auto-approve" in capsys.readouterr().err
    assert "device" not in live(server)


def test_a_partial_failure_exits_1_and_a_rerun_finishes(work: Path, server: EmulatorServer,
                                                        capsys: pytest.CaptureFixture[str]) -> \
        None:
    server.emulator.traffic.configure(Knobs(faults=[
        FaultRule("POST /device-template/quick", 1.0, ("500",))]))
    assert iotc("apply", "m", "--auto-approve") == 1
    out = capsys.readouterr().out
    assert "failed: template/gateway01: POST /device-template/quick: HTTP 500" in out
    assert "Apply incomplete: 2 failed, 63 skipped" in out
    assert server.emulator.traffic.counts["POST /device-template/quick"] == 6  # 3 tries each
    server.emulator.traffic.configure(Knobs())
    assert iotc("apply", "m", "--auto-approve") == 0
    assert iotc("plan", "m", "--detailed-exitcode") == 0


def test_a_read_back_that_fails_reports_the_changes_as_not_confirmed(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The changes were made, the account cannot be read back: the report says what the
    service accepted and that it is not confirmed (never a bare error that hides 65 creates
    and 60 new keys), exit 1, and the next apply converges."""
    from iotc_apply import operations
    from iotc_apply.client.retry import Retrying

    monkeypatch.setattr(Retrying, "backoff", lambda self, attempt: 0.0)  # 503s: no waiting
    real, calls = operations.plan_account, []

    def then_the_service_fails(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # the read-back after executing
            server.emulator.traffic.configure(Knobs(faults=[
                FaultRule("GET /Entity", 1.0, ("503",))]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(operations, "plan_account", then_the_service_fails)
    assert iotc("apply", "m", "--auto-approve") == 1
    out = capsys.readouterr().out
    assert "Apply not confirmed: 65 created; 60 private key(s) written to" in out
    assert "reading the account back failed (GET /Entity: HTTP 503: Service unavailable.)" \
        in out
    server.emulator.traffic.configure(Knobs())
    assert iotc("apply", "m", "--auto-approve") == 0
    assert "No changes" in capsys.readouterr().out
    assert len(live(server)["device"]) == 60


def test_convergence_under_faults_and_a_rate_limit(work: Path, server: EmulatorServer) -> None:
    server.emulator.traffic.configure(Knobs(
        rate_limit=50.0, fault_seed=20261122,
        faults=[FaultRule("* *", 0.2, ("500", "503", "html502", "drop", "commit_then_fail"))]))
    codes = []
    for _ in range(12):
        codes.append(iotc("apply", "m", "--auto-approve"))
        if codes[-1] == 0:
            break
    assert codes[-1] == 0, codes
    server.emulator.traffic.configure(Knobs())
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    state = live(server)
    duids = sorted(d["uniqueId"] for d in state["device"])
    assert len(duids) == len(set(duids)) == 60  # no duplicates, no orphans
    assert sorted(t["code"] for t in state["template"]) == ["gateway01", "sensor01"]
    assert sorted(u["software"] for u in state["upgrade"]) == ["1.0.0", "1.1.0"]
    assert len(state["firmware"]) == 1 and len(state["file"]) == 2
    for d in state["device"]:  # every registered certificate matches a key we still hold
        key = serialization.load_pem_private_key(
            (account_keys(server, work / "keys") / d["uniqueId"] / "key.pem").read_bytes(),
            password=None)
        cert = x509.load_pem_x509_certificate(d["certificateText"].encode())
        assert cert.public_key() == key.public_key()


def test_interrupt_starts_nothing_new_and_reports(work: Path, server: EmulatorServer,
                                                  api: IoTConnect) -> None:
    from iotc_apply import snapshot
    from iotc_apply.manifest import load
    from iotc_apply.plan import make_plan

    desired = load([str(work / "m")]).desired
    plan = make_plan(desired, snapshot.take(api, ["gateway01", "sensor01"], ["SENSORFW"]))
    stop = threading.Event()

    class StopAfterTemplates(Hooks):
        def finished(self, step: Step, status: Status, message: str) -> None:
            if step.address.kind.value == "template":
                stop.set()

    result = execute(plan, Actions(api, KeyStore(work / "keys"), plan), parallelism=2,
                     hooks=StopAfterTemplates(), stop=stop)
    assert result.interrupted and not result.ok
    statuses = {r.status for r in result.results}
    assert Status.NOT_STARTED in statuses and Status.FAILED not in statuses
    done = [r for r in result.results if r.status is Status.DONE]
    assert 1 <= len(done) < 65
    assert len(live(server).get("device", [])) == sum(1 for r in done
                                                      if r.address.kind.value == "device")


@pytest.mark.usefixtures("applied")
def test_template_replacement_cascade_and_device_move_apply_cleanly(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    gateway = work / "m" / "gateway-template.yaml"
    gateway.write_text(gateway.read_text() + "  messageVersion: \"2.0\"\n")
    devices = work / "m" / "devices.yaml"
    text = devices.read_text()
    first = text.index("name: th-lab-01")
    devices.write_text(text[:first] + text[first:].replace("template: sensor01",
                                                           "template: gateway01", 1))
    old = {d["uniqueId"]: d["guid"] for d in live(server)["device"]}
    capsys.readouterr()
    assert iotc("plan", "m", "--detailed-exitcode") == 1  # the examples' maxDeletes: 50%
    assert "template/gateway01: the plan deletes or replaces 3 of its 3 live device(s) " \
        "(100%)" in capsys.readouterr().out
    assert iotc("plan", "m", "--detailed-exitcode", "--allow-deletes", "4") == 2
    out = capsys.readouterr().out
    assert "Plan: 0 to create, 0 to update, 5 to replace, 0 to delete; 60 unchanged." in out
    assert iotc("apply", "m", "--auto-approve", "--allow-deletes", "4") == 0
    assert "Apply complete: 5 replaced" in capsys.readouterr().out
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    now = {d["uniqueId"]: d for d in live(server)["device"]}
    replaced = sorted(duid for duid, guid in old.items() if now[duid]["guid"] != guid)
    assert replaced == ["gw-0001", "gw-0002", "gw-0003", "th-lab-01"]
    template = next(t for t in live(server)["template"] if t["code"] == "gateway01")
    assert template["messageVersion"] == "2.0"
    assert now["th-lab-01"]["templateGuid"] == template["guid"]


def test_a_saved_plan_with_errors_is_refused(work: Path, server: EmulatorServer,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text().replace("entity: Plant-B", "entity: Plant-Z"))
    assert iotc("plan", "m", "--format", "json") == 1
    (work / "plan.json").write_text(capsys.readouterr().out)
    assert iotc("apply", "plan.json") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: plan.json: the plan has 3 error(s) and cannot be applied: "
                          "device/th-lab-05: entity 'Plant-Z' does not exist")
    assert "device" not in live(server)


@pytest.mark.usefixtures("applied")
def test_the_delete_cap_is_lifted_for_one_run_and_a_saved_plan_records_it(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Project.spec.guards.maxDeletes: 1 and three gateways pruned: plan error; with
    --allow-deletes 3 the plan goes, the saved plan records it and applies as saved."""
    import json

    project = work / "m" / "project.yaml"
    text = project.read_text()
    assert 'maxDeletes: "50%"' in text
    project.write_text(text.replace('maxDeletes: "50%"', "maxDeletes: 1", 1))
    devices = work / "m" / "devices.yaml"
    kept = [d for d in devices.read_text().split("---") if "gw-000" not in d]
    devices.write_text("---".join(kept))  # the gateways go; Project.prune takes gw-*
    assert iotc("plan", "m") == 1
    assert "more than Project.spec.guards.maxDeletes (1); pass --allow-deletes 3" in \
        capsys.readouterr().out
    assert iotc("plan", "m", "--allow-deletes", "3", "--out", "p.json") == 0
    assert json.loads(Path("p.json").read_text())["source"]["options"]["allow_deletes"] == 3
    capsys.readouterr()
    assert iotc("apply", "p.json") == 0
    assert "3 deleted" in capsys.readouterr().out


@pytest.mark.usefixtures("applied")
def test_a_device_seen_lately_is_not_deleted_without_allow_online(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    """A connected device, or one seen within the online window (24 h, or
    Project.spec.guards.onlineWindow), is not deleted unless --allow-online names it; every
    device delete says when it was last seen, in text and JSON (issue 30)."""
    import datetime
    import json

    import requests

    def seen(duid: str, connected: bool, hours_ago: float) -> None:
        at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours_ago)
        assert requests.post(server.url + "/_emulator/connection", timeout=5, json={
            "uniqueId": duid, "connected": connected, "at": at.isoformat()}).status_code == 200

    seen("gw-0001", True, 0)
    seen("gw-0002", False, 2)
    seen("gw-0003", False, 30)
    devices = work / "m" / "devices.yaml"
    devices.write_text("---".join(d for d in devices.read_text().split("---")
                                  if "gw-000" not in d))  # the three go (Project prunes gw-*)
    capsys.readouterr()
    assert iotc("plan", "m") == 1
    out = capsys.readouterr().out
    assert "error: device/gw-0001: is live (connected now; within the 24 h online window)" in out
    assert "error: device/gw-0002: is live (last seen " in out
    assert "device/gw-0003" not in out.split("error:", 1)[1]  # 30 h ago: not live
    # (all three gateways go: the emptied-template guard wants --allow-deletes as well)
    assert iotc("plan", "m", "--allow-online", "gw-000[12]", "--allow-deletes", "3",
                "--format", "json") == 0
    plan = json.loads(capsys.readouterr().out)
    notes = {c["address"]: c["note"] for c in plan["changes"] if c["action"] == "delete"}
    assert notes["device/gw-0001"] == "connected now"
    assert notes["device/gw-0003"].startswith("last seen ")
    project = work / "m" / "project.yaml"
    project.write_text(project.read_text().replace(
        "onlineWindow: 24h", "onlineWindow: 1h\n    allowOnline: [gw-0001]", 1))
    assert iotc("plan", "m", "--allow-deletes", "3") == 0  # gw-0002: 2 h ago, window 1 h


def test_a_sweep_leaves_a_live_device_unless_allowed(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    """`destroy --match` deletes live objects declared or not: the online guard holds there
    too (issue 30)."""
    import datetime

    import requests

    assert iotc("apply", "m", "--auto-approve") == 0
    now = datetime.datetime.now(datetime.UTC).isoformat()
    assert requests.post(server.url + "/_emulator/connection", timeout=5, json={
        "uniqueId": "lt-0001", "connected": True, "at": now}).status_code == 200
    capsys.readouterr()
    assert iotc("destroy", "--match", "device/lt-000*", "--auto-approve") == 1
    assert "error: device/lt-0001: is live (connected now" in capsys.readouterr().out
    assert iotc("destroy", "--match", "device/lt-000*", "--allow-online", "lt-0001",
                "--auto-approve") == 0
    assert not any(d["uniqueId"].startswith("lt-000") for d in live(server)["device"])
