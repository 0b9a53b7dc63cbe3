"""`iotc get`: stable fields, streamed output, list endpoints only, one-line refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer

from .support import iotc


def get(*args: str) -> int:
    from iotc_apply.cli import main

    return main(["get", *args])


@pytest.fixture
def applied(work: Path, capsys: pytest.CaptureFixture[str]) -> Path:  # noqa: F811
    assert iotc("apply", "m", "--auto-approve") == 0
    capsys.readouterr()
    return work


def test_devices_as_json_yaml_and_table(applied: Path, server: EmulatorServer,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    server.emulator.traffic.reset_counts()
    assert get("devices", "lt-*", "-o", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 50 and list(rows[0]) == ["uniqueId", "displayName", "template",
                                                 "entity", "active", "guid"]
    assert {r["entity"] for r in rows} == {"Plant-B"} and {r["template"] for r in rows} == \
        {"sensor01"}
    counts = server.emulator.traffic.counts
    assert counts["GET /Device"] <= 2 * 2 + 2 and not any(k.startswith("GET /Device/")
                                                         for k in counts)
    assert get("upgrades", "-o", "yaml") == 0
    upgrades = yaml.safe_load(capsys.readouterr().out)
    assert [(u["firmware"], u["version"], u["released"], u["files"]) for u in upgrades] == \
        [("SENSORFW", "1.0.0", True, 1), ("SENSORFW", "1.1.0", False, 1)]
    assert get("devices", "--template", "gateway01") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["UNIQUEID", "DISPLAYNAME", "TEMPLATE", "ENTITY", "ACTIVE"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["gw-0001", "gw-0002", "gw-0003"]
    assert get("templates", "-o", "wide") == 0
    assert "GUID" in capsys.readouterr().out.splitlines()[0]


def test_nothing_matching_is_a_note_and_bad_input_one_line(
        applied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert get("firmware", "NOPE*") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "No firmware match 'NOPE*'.\n"
    for args, message in ((["widgets"], "error: unknown kind 'widgets': expected one of "
                           "templates, devices, firmware, upgrades, rollouts (singular and "
                           "dev, tpl, fw, up, ota work too)"),
                          (["devics"], "error: unknown kind 'devics': expected one of "
                           "templates, devices, firmware, upgrades, rollouts (singular and "
                           "dev, tpl, fw, up, ota work too); did you mean 'devices'?"),
                          (["devices", "lt-[0"], "error: bad glob 'lt-[0': a '[' is not "
                           "closed")):
        assert get(*args) == 1
        assert capsys.readouterr().err.strip().splitlines() == [message]


def test_kinds_by_any_name_sorted_and_selected(applied: Path, server: EmulatorServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Singular, plural and short kinds; rows by natural key (digits as numbers) or --sort;
    --entity and --active/--inactive select devices (each failed on the code before)."""
    results = []
    for kind in ("device", "dev", "devices"):
        assert get(kind, "-o", "json") == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1] == results[2] and len(results[0]) == 60
    duids = [r["uniqueId"] for r in results[0]]
    assert duids == sorted(duids) and duids[0] == "gw-0001"
    assert get("devices", "--sort", "displayName", "-o", "json") == 0
    names = [r["displayName"] for r in json.loads(capsys.readouterr().out)]
    assert names == sorted(names, key=lambda n: [int(p) if p.isdigit() else p.casefold()
                                                 for p in re.split(r"(\d+)", n)])
    assert get("dev", "--entity", "plant-b", "--inactive", "-o", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {(r["entity"], r["active"]) for r in rows} == {("Plant-B", False)}
    assert get("dev", "--active", "-o", "json") == 0
    assert all(r["active"] for r in json.loads(capsys.readouterr().out))
    assert get("tpl", "--entity", "x") == 1
    assert "--entity, --active and --inactive select devices" in capsys.readouterr().err
    assert get("dev", "--sort", "nope") == 1
    assert "--sort 'nope': devices have the fields uniqueId" in capsys.readouterr().err


def test_names_with_any_digits_sort_as_text(applied: Path, api: IoTConnect,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Names come from the account, untrusted: only ASCII digit runs sort as numbers. `Node
    3²` was an internal error (the sort key asked `isdigit`, which says yes to '²', after
    a split on `\\d`, which did not take it: `int('²')` raised)."""
    devices = sorted(api.devices.list(), key=lambda d: d.duid)[:3]
    root = api.entities.root().guid
    for device, name in zip(devices, ("Node 3\u00b2", "Node \u0661\u0662", "Node 3"),
                            strict=True):
        api.devices.update(device.guid, device.duid, name, device.entity_guid or root)
    assert get("devices", "--sort", "displayName", "-o", "json") == 0
    names = [r["displayName"] for r in json.loads(capsys.readouterr().out)]
    mine = [n for n in names if n.startswith("Node ")]
    assert mine == ["Node 3", "Node 3\u00b2", "Node \u0661\u0662"]
