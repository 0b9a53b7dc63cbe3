"""Fleet safety beyond the online and blast-radius guards (issue 30): two-phase removal over
three applies, a device declared again in between, change windows (pure boundaries in other
time zones, held changes at apply, a saved plan applied after its window closed,
--outside-window), and the impact block."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
import requests

from iotc_apply.cli import apply as apply_command
from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer
from iotc_apply.model import ChangeWindow
from iotc_apply.plan.windows import inside, next_opening

from .support import iotc, live

BERLIN_WEEKNIGHTS = ChangeWindow(frozenset(range(5)), (22, 0), 7 * 60, "Europe/Berlin")


def _at(text: str, zone: str) -> float:
    """A local wall-clock time in a zone, as epoch seconds."""
    from zoneinfo import ZoneInfo

    return datetime.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_a_window_opens_and_closes_on_its_own_zones_clock() -> None:
    """Mon-Fri 22:00-05:00 Berlin, seen from Chicago and UTC: Friday's window runs into
    Saturday morning, then nothing opens until Monday 22:00."""
    windows = (BERLIN_WEEKNIGHTS,)
    friday_2159_berlin = _at("2026-12-11T21:59:59", "Europe/Berlin")
    assert not inside(windows, friday_2159_berlin)
    assert next_opening(windows, friday_2159_berlin) == "Fri 2026-12-11 22:00 Europe/Berlin"
    assert inside(windows, _at("2026-12-11T15:00:00", "America/Chicago"))  # 22:00 Berlin
    assert inside(windows, _at("2026-12-12T03:59:00", "UTC"))  # Sat 04:59 Berlin
    saturday_0500 = _at("2026-12-12T04:00:00", "UTC")  # Sat 05:00 Berlin: closed
    assert not inside(windows, saturday_0500)
    assert next_opening(windows, saturday_0500) == "Mon 2026-12-14 22:00 Europe/Berlin"
    # a summer date: Berlin is UTC+2, and the window follows the local clock
    assert inside(windows, _at("2026-07-06T20:30:00", "UTC"))  # Mon 22:30 CEST
    assert not inside(windows, _at("2026-07-06T19:30:00", "UTC"))
    # no window declared: always inside
    assert inside((), saturday_0500)


def _seen(server: EmulatorServer, duid: str, hours_ago: float) -> None:
    at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours_ago)
    assert requests.post(server.url + "/_emulator/connection", timeout=5, json={
        "uniqueId": duid, "connected": False, "at": at.isoformat()}).status_code == 200


def _devices(server: EmulatorServer) -> dict[str, dict]:  # type: ignore[type-arg]
    return {d["uniqueId"]: d for d in live(server)["device"]}


def _drop(work: Path, *duids: str) -> str:
    """Remove devices from the examples' manifests; returns the old text to restore."""
    devices = work / "m" / "devices.yaml"
    text = devices.read_text()
    devices.write_text("---".join(d for d in text.split("---")
                                  if not any(f"name: {x}\n" in d for x in duids)))
    return text


def _project(work: Path, old: str, new: str) -> None:
    project = work / "m" / "project.yaml"
    text = project.read_text()
    assert old in text
    project.write_text(text.replace(old, new, 1))


@pytest.mark.usefixtures("applied")
def test_two_phase_removal_deactivates_then_deletes_over_three_applies(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Apply 1 deactivates both pruned devices; apply 2 deletes the one never seen, and the
    one seen 2 h ago waits (its template stays); apply 3, once it has been unseen for the
    online window, deletes it. The account is the only state between the applies."""
    _project(work, "# removal: deactivate-first", "removal: deactivate-first")
    _drop(work, "th-lab-01", "th-lab-02")
    _seen(server, "th-lab-02", 2)
    capsys.readouterr()
    assert iotc("plan", "m", "--format", "json") == 0
    plan = json.loads(capsys.readouterr().out)
    actions = {c["address"]: (c["action"], c["note"]) for c in plan["changes"]}
    assert actions == {
        "device/th-lab-01": ("deactivate", "deactivate; deleted by a later apply; never seen "
                             "connected"),
        "device/th-lab-02": ("deactivate", "deactivate; deleted by a later apply; last seen "
                             + _devices(server)["th-lab-02"]["lastConnection"])}
    assert plan["summary"]["deactivate"] == 2 and plan["summary"]["delete"] == 0
    assert iotc("apply", "m", "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "- device/th-lab-01 (deactivate; deleted by a later apply; never seen connected): " \
        "not declared, matches a prune glob" in out
    assert "Apply complete: 2 deactivated" in out
    now = _devices(server)
    assert not now["th-lab-01"]["isActive"] and not now["th-lab-02"]["isActive"]

    assert iotc("apply", "m", "--auto-approve") == 0  # apply 2
    out = capsys.readouterr().out
    assert re.search(r"- device/th-lab-01 +delete: not declared, matches a prune glob", out)
    assert "warning: device/th-lab-02: inactive, but last seen " in out
    assert "deleted by an apply once it has not been seen for 24 h" in out
    assert "Apply complete: 1 deleted" in out
    now = _devices(server)
    assert "th-lab-01" not in now and not now["th-lab-02"]["isActive"]

    _seen(server, "th-lab-02", 30)
    assert iotc("apply", "m", "--auto-approve") == 0  # apply 3
    assert "Apply complete: 1 deleted" in capsys.readouterr().out
    assert "th-lab-02" not in _devices(server)
    assert iotc("plan", "m", "--detailed-exitcode") == 0


@pytest.mark.usefixtures("applied")
def test_a_device_declared_again_between_the_phases_is_reactivated_not_deleted(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _project(work, "# removal: deactivate-first", "removal: deactivate-first")
    text = _drop(work, "th-lab-03")
    assert iotc("apply", "m", "--auto-approve") == 0
    assert not _devices(server)["th-lab-03"]["isActive"]
    guid = _devices(server)["th-lab-03"]["guid"]
    (work / "m" / "devices.yaml").write_text(text)  # declared again
    capsys.readouterr()
    assert iotc("plan", "m") == 0
    out = capsys.readouterr().out
    assert re.search(r"~ device/th-lab-03 +update in place", out)
    assert "~ active: false -> true" in out
    assert iotc("apply", "m", "--auto-approve") == 0
    device = _devices(server)["th-lab-03"]
    assert device["isActive"] and device["guid"] == guid  # the same record, never deleted


@pytest.mark.usefixtures("applied")
def test_two_phase_destroy_keeps_a_template_until_its_devices_are_deleted(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _project(work, "# removal: deactivate-first", "removal: deactivate-first")
    _project(work, 'maxDeletes: "50%"', "maxDeletes: 100")
    capsys.readouterr()
    assert iotc("destroy", "m", "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "warning: template/gateway01: deleted by a later apply, after its devices" in out
    assert {d["isActive"] for d in _devices(server).values()} == {False}
    assert {t["code"] for t in live(server)["template"]} == {"gateway01", "sensor01"}
    assert iotc("destroy", "m", "--auto-approve") == 0  # never seen: deleted now
    assert "device" not in live(server) or not live(server)["device"]
    assert iotc("destroy", "m", "--auto-approve") == 0  # their templates follow
    assert not live(server).get("template")


def _window(hours_from_now: float, length_hours: int = 1) -> str:
    """A daily window in Asia/Tokyo that opens `hours_from_now` (whole minutes)."""
    from zoneinfo import ZoneInfo

    opens = datetime.datetime.now(ZoneInfo("Asia/Tokyo")) + \
        datetime.timedelta(hours=hours_from_now)
    closes = opens + datetime.timedelta(hours=length_hours)
    return (f'windows:\n    - {{start: "{opens:%H:%M}", end: "{closes:%H:%M}", '
            "timeZone: Asia/Tokyo}\n")


@pytest.mark.usefixtures("applied")
def test_outside_the_window_apply_holds_the_deletes_and_applies_the_rest(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _project(work, "  # windows:\n", "  " + _window(3))
    _drop(work, "th-lab-04")
    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text().replace("Lab sensor 1", "Lab sensor one"))
    capsys.readouterr()
    assert iotc("plan", "m") == 0  # a warning, not an error: what may run still runs
    out = capsys.readouterr().out
    assert "warning: device/th-lab-04: outside the change window; next window opens " in out
    assert "Asia/Tokyo (Project.spec.windows); apply holds it" in out
    assert "guards fired: outside-window (1)" in out
    assert iotc("apply", "m", "--auto-approve", "--report", "r.json") == 1
    out = capsys.readouterr().out
    assert re.search(r"- device/th-lab-04 +held: outside the change window", out)
    assert "Held: 1 change(s) wait for a change window" in out
    assert "Apply incomplete: 1 updated, 1 held" in out
    now = _devices(server)
    assert now["th-lab-04"]["isActive"] and now["th-lab-01"]["displayName"] == "Lab sensor one"
    report = json.loads(Path("r.json").read_text())
    assert report["counts"]["held"] == 1 and report["outside_window"] is None
    assert iotc("apply", "m", "--auto-approve", "--outside-window", "INC-4711 hotfix",
                "--report", "r.json") == 0
    out = capsys.readouterr().out
    assert "Outside the change window, as asked: INC-4711 hotfix" in out
    assert "th-lab-04" not in _devices(server)
    assert json.loads(Path("r.json").read_text())["outside_window"] == "INC-4711 hotfix"


@pytest.mark.usefixtures("applied")
def test_a_saved_plan_applied_after_its_window_closed_is_held(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reviewed inside the window (no warning), applied two hours later: the deletes wait;
    the same saved plan made with --outside-window carries its reason and runs."""
    import time

    _project(work, "  # windows:\n", "  " + _window(-0.5))  # open since 30 min, for 1 h
    _drop(work, "th-lab-04")
    capsys.readouterr()
    assert iotc("plan", "m", "--out", "p.json") == 0
    assert "outside the change window" not in capsys.readouterr().out

    class Later:
        @staticmethod
        def time() -> float:
            return time.time() + 2 * 3600

    monkeypatch.setattr(apply_command, "time", Later)
    assert iotc("apply", "p.json") == 1
    assert re.search(r"- device/th-lab-04 +held: outside the change window",
                     capsys.readouterr().out)
    assert "th-lab-04" in _devices(server)
    assert iotc("plan", "m", "--out", "p.json", "--outside-window", "approved in CAB-12") == 0
    saved = json.loads(Path("p.json").read_text())
    assert saved["source"]["options"]["outside_window"] == "approved in CAB-12"
    assert iotc("apply", "p.json") == 0
    assert "Outside the change window, as asked: approved in CAB-12" in capsys.readouterr().out
    assert "th-lab-04" not in _devices(server)


@pytest.mark.usefixtures("applied")
def test_the_impact_block_leads_the_plan_and_the_markdown(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    _drop(work, "th-lab-01", "gw-0001")
    requests.post(server.url + "/_emulator/connection", timeout=5, json={
        "uniqueId": "gw-0001", "connected": True,
        "at": datetime.datetime.now(datetime.UTC).isoformat()})
    capsys.readouterr()
    assert iotc("plan", "m", "--allow-online", "gw-0001", "--format", "json") == 0
    impact = json.loads(capsys.readouterr().out)["impact"]
    assert impact["devices"] == [{"template": "gateway01", "action": "delete", "count": 1},
                                 {"template": "sensor01", "action": "delete", "count": 1}]
    assert impact["connected"] == 1 and impact["guards"] == []
    estimate = impact["estimate"]
    assert estimate["requests"] == 2 and estimate["parallelism"] == 10
    assert estimate["latency_ms"] > 0 and estimate["seconds"] > 0
    assert iotc("plan", "m", "--format", "markdown") == 1  # gw-0001 is live: an error
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[2:5] == ["> template/gateway01: devices 1 to delete  ",
                             "> template/sensor01: devices 1 to delete  ",
                             markdown[4]]
    assert markdown[4].startswith("> 1 connected device(s) cut off; guards fired: online (1); "
                                  "about 2 request(s), \\~")  # markdown-escaped


@pytest.mark.usefixtures("applied")
def test_the_emulator_disconnects_a_deactivated_device_and_refuses_it_connecting(
        work: Path, server: EmulatorServer, api: IoTConnect) -> None:
    """AE device swagger: deactivation releases the device from the broker; an inactive
    device cannot report itself connected through the control endpoint."""
    now = datetime.datetime.now(datetime.UTC).isoformat()
    assert requests.post(server.url + "/_emulator/connection", timeout=5, json={
        "uniqueId": "gw-0002", "connected": True, "at": now}).status_code == 200
    device = _devices(server)["gw-0002"]
    api.devices.set_active(device["guid"], "gw-0002", False)
    listed = {d.duid: d for d in api.devices.list()}["gw-0002"]
    assert listed.connected is False and not listed.active
    assert listed.last_seen is not None and listed.last_seen >= now[:19]
    refused = requests.post(server.url + "/_emulator/connection", timeout=5, json={
        "uniqueId": "gw-0002", "connected": True, "at": now})
    assert (refused.status_code, refused.text) == (
        409, "Device is inactive: the broker does not let it connect.")


@pytest.mark.usefixtures("applied")
def test_the_estimate_runs_at_the_rate_the_service_allowed(
        work: Path, server: EmulatorServer, api: IoTConnect) -> None:
    """After 429s halved the client's throttle, the estimate's parallelism is that limit,
    not the one asked for (issue 30: 'at the configured parallelism and rate')."""
    from iotc_apply import operations
    from iotc_apply.model import Address, Kind
    from iotc_apply.plan import Action, Change, Reason
    from iotc_apply.plan.model import Account, Plan

    assert list(api.devices.list())  # a few answers: a latency to go by
    plan = Plan(Account("aws", "poc", "C", False), tuple(
        Change(Address(Kind.DEVICE, f"d-{i}"), Action.DELETE, Reason.PRUNE, {}, None)
        for i in range(40)), 0)
    assert operations.with_estimate(api, plan, 10).impact.estimate.parallelism == 10
    api.session.retrying.throttle.limit = 3.0  # as two 429s leave it
    slow = operations.with_estimate(api, plan, 10).impact.estimate
    assert slow.parallelism == 3 and slow.requests == 40
