"""The planner on pure values, and golden renderings of its plan (text, markdown, JSON)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from rich.console import Console

from iotc_apply.manifest import load
from iotc_apply.model import (
    Address,
    Identity,
    Kind,
    LiveAttribute,
    LiveCommand,
    LiveDevice,
    LiveEntity,
    LiveTemplate,
    Snapshot,
)
from iotc_apply.plan import (
    Account,
    Action,
    Change,
    Plan,
    PlanIssue,
    PlanOptions,
    Reason,
    make_plan,
    planfile,
)
from iotc_apply.plan.model import FieldChange
from iotc_apply.ui import plan_markdown, plan_text
from iotc_apply.ui.console import theme

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parent.parent
UPDATE = bool(os.environ.get("IOTC_UPDATE_GOLDEN"))


def snapshot() -> Snapshot:
    sensor = LiveTemplate("T-1", "sensor01", "Sensor", 3, "2.1", None,
                          (LiveCommand("C-1", "Reboot", "reboot", False, True, False),))
    return Snapshot(
        identity=Identity("admin@example.com", "U-1", "CO-1", "CPID0001", "E-ROOT", "aws",
                          "poc", False),
        entities=(LiveEntity("E-ROOT", "Acme", None), LiveEntity("E-A", "Plant-A", "E-ROOT")),
        templates={"sensor01": sensor,
                   "old01": LiveTemplate("T-2", "old01", "Old", 3, "2.1", None, ())},
        attributes={"sensor01": (LiveAttribute("A-1", "temperature", "DECIMAL", "C", None, (),
                                               1),)},
        devices={"d-1": LiveDevice("D-1", "d-1", "D-1", "T-1", True, "Plant-A", connected=False),
                 "x-9": LiveDevice("D-9", "x-9", "X", "T-2", True, "Plant-A",
                                   connected=False)},
        firmwares={})


def golden_plan() -> Plan:
    desired = load([str(GOLDEN / "manifests")]).desired
    return make_plan(desired, snapshot(), PlanOptions(local_keys=frozenset({"d-1"})))


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual)
    assert actual == path.read_text()


def test_planner_decisions_on_pure_values() -> None:
    plan = golden_plan()
    assert [(str(c.address), c.action, c.reason) for c in plan.changes] == [
        ("device/x-9", Action.DELETE, Reason.PRUNE),
        ("template/old01", Action.DELETE, Reason.PRUNE),
        ("device/d-1", Action.UPDATE, Reason.CHANGED),
        ("template/sensor01", Action.UPDATE, Reason.CHANGED),
        ("device/d-2", Action.CREATE, Reason.NEW)]
    assert plan.errors == () and plan.warnings == ()
    assert plan.fingerprint["device/d-2"] == "absent"
    assert plan.entities == {"Acme": "E-ROOT", "Plant-A": "E-A", "": "E-ROOT"}


def test_golden_text() -> None:
    out = io.StringIO()
    plan_text.render(Console(file=out, width=100, color_system=None, theme=theme()), golden_plan())
    check_golden("plan.txt", out.getvalue())


def test_golden_markdown() -> None:
    check_golden("plan.md", plan_markdown.render(golden_plan()))


def test_golden_json_validates_against_the_plan_schema() -> None:
    text = planfile.dumps(golden_plan())
    check_golden("plan.json", text)
    schema = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(json.loads(text))) == []


def test_plan_file_round_trips(tmp_path: Path) -> None:
    plan = golden_plan()
    planfile.write(plan, tmp_path / "plan.json")
    assert planfile.read(tmp_path / "plan.json")[0] == plan
    planfile.write(plan, tmp_path / "signed.json", key="k1")
    assert planfile.read(tmp_path / "signed.json", key="k1")[0] == plan
    for key, file, message in (("k2", "signed.json", "signature does not match"),
                               ("k1", "plan.json", "the plan is not signed")):
        with pytest.raises(planfile.PlanFileError, match=message):
            planfile.read(tmp_path / file, key=key)


def test_markdown_of_a_12000_device_plan_fits_a_comment() -> None:
    changes = tuple(Change(Address(Kind.DEVICE, f"lt-{i:05d}"), Action.CREATE, Reason.NEW,
                           None, {"duid": f"lt-{i:05d}"}) for i in range(12_000))
    plan = Plan(Account("aws", "poc", "CPID0001", False), changes, 0)
    text = plan_markdown.render(plan)
    assert len(text) < 65_000
    assert text.startswith("### iotc plan: 12000 to create, 0 to update")
    shown = text.count("\n+ device/lt-")
    assert 1000 < shown < 12_000
    assert f"_{12_000 - shown} more change(s) not shown;" in text


def _fleet_plan(n: int) -> Plan:
    changes = tuple(Change(Address(Kind.DEVICE, f"lt-{i:05d}"), Action.CREATE, Reason.NEW,
                           None, {"duid": f"lt-{i:05d}", "template": "sensor01",
                                  "entity": "Plant-A", "displayName": f"Sensor {i}",
                                  "active": True}) for i in range(n))
    warnings = tuple(PlanIssue("key-not-kept", "exists, but its private key is not in the key "
                               "store; the device cannot connect with a key from here",
                               f"device/gw-{i:04d}") for i in range(n))
    unmanaged = tuple(f"device/old-{i:04d}" for i in range(n))
    return Plan(Account("aws", "poc", "CPID0001", False), changes, 0, warnings=warnings,
                unmanaged=unmanaged)


def test_repeated_warnings_and_unmanaged_objects_are_aggregated() -> None:
    buffer = io.StringIO()
    plan_text.render(Console(file=buffer, width=200, no_color=True), _fleet_plan(57))
    lines = buffer.getvalue().splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == ["warning: 57 devices: exists, but its private key is not in the key "
                        "store; the device cannot connect with a key from here: gw-0000, "
                        "gw-0001, gw-0002, ... (all in the JSON plan)"]
    unmanaged = [line for line in lines if line.startswith("?")]
    assert len(unmanaged) == 22 and unmanaged[-2] == \
        "? ... and 37 more not in the manifests (all in the JSON plan)"
    assert unmanaged[-1].startswith("? bring them in: iotc export DIR --match 'device/old-0000'")
    assert "+ device/lt-00001                  template=sensor01  entity=Plant-A  " \
           'name="Sensor 1"' in lines


def test_markdown_of_10000_devices_with_warnings_fits_a_comment() -> None:
    text = plan_markdown.render(_fleet_plan(10_000))
    assert len(text) < 65_000
    assert "10000 devices: exists, but its private key" in text


def test_markdown_groups_many_devices_under_their_template() -> None:
    text = plan_markdown.render(_fleet_plan(2_000))
    summary = text.split("<details>")[0]
    assert "+ 2000 device(s) on template/sensor01 (declared, not in the account): lt-00000, " \
           "lt-00001, lt-00002, ..., lt-01999" in summary
    assert summary.count("\n+ device/") == 0  # the one-by-one list is folded below
    assert "+ device/lt-00000" in text.split("<details>")[1] and len(text) < 65_000


def _mixed_plan(n: int) -> Plan:
    """n each of device creates, updates and deletes, shared and unique warnings and
    errors, and unmanaged objects: every list that can grow."""
    def device(i: int, prefix: str) -> dict[str, object]:
        return {"duid": f"{prefix}-{i:05d}", "template": "sensor01", "entity": "Plant-A",
                "displayName": f"Sensor {i}", "active": True, "guid": f"G-{prefix}-{i}"}

    changes = [Change(Address(Kind.DEVICE, f"new-{i:05d}"), Action.CREATE, Reason.NEW, None,
                      device(i, "new")) for i in range(n)]
    changes += [Change(Address(Kind.DEVICE, f"upd-{i:05d}"), Action.UPDATE, Reason.CHANGED,
                       device(i, "upd"), {**device(i, "upd"), "displayName": f"Pump {i}"},
                       (FieldChange("displayName", f"Sensor {i}", f"Pump {i}"),))
                for i in range(n)]
    changes += [Change(Address(Kind.DEVICE, f"old-{i:05d}"), Action.DELETE, Reason.PRUNE,
                       device(i, "old"), None) for i in range(n)]
    warnings = tuple(PlanIssue("key-not-kept", "exists, but its private key is not in the key "
                               "store", f"device/upd-{i:05d}") for i in range(n)) + \
        tuple(PlanIssue("certificate-expiring", f"certificate {i} expires in {i % 30} days",
                        f"device/new-{i:05d}") for i in range(n))
    errors = tuple(PlanIssue("protected", "is protected (Project.protect) but the plan would "
                             "delete it", f"device/old-{i:05d}") for i in range(n)) + \
        tuple(PlanIssue("entity-missing", f"entity 'Site-{i}' does not exist",
                        f"device/new-{i:05d}") for i in range(n))
    unmanaged = tuple(f"device/stray-{i:05d}" for i in range(n))
    return Plan(Account("aws", "poc", "CPID0001", False),
                tuple(sorted(changes, key=lambda c: c.sort_key)), 0, warnings=warnings,
                errors=errors, unmanaged=unmanaged)


def test_golden_folded_text_and_markdown() -> None:
    """Shared messages fold to one line with the count and the first addresses; past 40
    lines a list is counted, not listed (the JSON plan keeps everything)."""
    out = io.StringIO()
    plan = _mixed_plan(50)
    plan_text.render(Console(file=out, width=100, color_system=None, theme=theme()), plan)
    check_golden("folded.txt", out.getvalue())
    check_golden("folded.md", plan_markdown.render(plan))
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("error:") for line in lines) == 40
    assert "error: 50 devices: is protected (Project.protect) but the plan would delete it: " \
           "old-00000, old-00001, old-00002, ... (all in the JSON plan)" in lines
    assert "error: ... and 12 more error(s) (all in the JSON plan)" in lines
    assert len(planfile.to_json(plan)["errors"]) == 100


def test_markdown_stays_a_comment_whatever_the_mix() -> None:
    """10,000 each of creates, updates, deletes, warnings, errors and unmanaged objects."""
    text = plan_markdown.render(_mixed_plan(10_000))
    assert len(text) < 65_000, len(text)
    assert text.startswith("### iotc plan: 10000 to create, 10000 to update, 0 to replace, "
                           "10000 to delete")
    assert "20000 device" not in text and "... and " in text


def test_a_list_too_short_to_fold_keeps_each_line_as_written() -> None:
    """A located error shown on its own keeps its file:line:column (the fold once dropped
    it); a shared cause folds past three, the request that met it left out."""
    located = PlanIssue("case-only", "the account has this device as 'lt-0001'",
                        "device/LT-0001", "m/fleet.yaml:12:9")
    other = PlanIssue("x", "other", "device/b")
    assert plan_text.folded([located, other]) == [
        "m/fleet.yaml:12:9: device/LT-0001: the account has this device as 'lt-0001'",
        "device/b: other"]
    lines = [PlanIssue("failed", f"GET /Device/uniqueId/d{i}: cannot connect", f"device/d{i}")
             for i in range(5)]
    assert plan_text.folded(lines, cause=lambda m: m.split(": ", 1)[1]) == [
        "5 devices: cannot connect: d0, d1, d2, ... (all in the JSON plan)"]
