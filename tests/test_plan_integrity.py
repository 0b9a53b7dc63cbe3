"""A saved plan is applied only when it is exactly the plan its manifests give now.

Plan files travel between CI jobs as artifacts; these tests edit one the ways a person or an
attacker could, and check that each edit is refused with one line and that nothing in the
account changed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iotc_apply.emulator import EmulatorServer, Knobs

from .support import iotc, live

Doc = dict[str, Any]


@pytest.fixture
def planned(applied: Path) -> Path:
    """The examples applied, then one edit planned (a display name) and saved."""
    work = applied
    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text().replace("Lab sensor 2\n", "Lab sensor two\n"))
    assert iotc("plan", "m", "--out", "plan.json") == 0
    return work / "plan.json"


def _update(doc: Doc) -> Doc:
    return next(c for c in doc["changes"] if c["action"] == "update")


def _into_delete_without_guid(doc: Doc) -> None:
    """The reported case (1): the update becomes a delete, its GUID removed, summary fixed."""
    change = _update(doc)
    change["action"], change["after"], change["fields"] = "delete", None, []
    change["before"].pop("guid")
    doc["summary"]["update"] -= 1
    doc["summary"]["delete"] += 1


def _into_delete_with_guid(doc: Doc) -> None:
    """The reported case (2): the same, with the device's real GUID kept."""
    change = _update(doc)
    change["action"], change["after"], change["fields"] = "delete", None, []
    doc["summary"]["update"] -= 1
    doc["summary"]["delete"] += 1


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        node: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            node = next(c for c in node if c["action"] == "update") if part == "UPDATE" \
                else node[part]
        node[parts[-1]] = value
    return edit


EDITS: dict[str, Callable[[Doc], None]] = {
    "update into delete, no GUID": _into_delete_without_guid,
    "update into delete, real GUID": _into_delete_with_guid,
    "action": _set("changes.UPDATE.action", "replace"),
    "address": _set("changes.UPDATE.address", "device/th-lab-03"),
    "guid": _set("changes.UPDATE.before.guid", "11111111-2222-3333-4444-555555555555"),
    "after": _set("changes.UPDATE.after.displayName", "Something else"),
    "before": _set("changes.UPDATE.before.displayName", "Something else"),
    "depends_on": _set("changes.UPDATE.depends_on", ["template/gateway01"]),
    "summary": _set("summary.create", 7),
    "format_version": _set("format_version", "1"),
    "entities": _set("entities.Plant-A", "11111111-2222-3333-4444-555555555555"),
    "guids": _set("guids.template/sensor01", "11111111-2222-3333-4444-555555555555"),
    "fingerprint": _set("fingerprint.device/th-lab-02", "0123456789abcdef"),
    "account": _set("account.cpid", "SOMEONEELSE"),
    "source.options": _set("source.options.prune", False),
    "source.digest": _set("source.digest", "sha256:" + "0" * 64),
    "destroy": _set("destroy", True),
    "an added change": lambda doc: doc["changes"].append(
        {**_update(doc), "address": "device/th-lab-01"}),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_edit_of_a_saved_plan_is_refused_and_nothing_changes(
        edit: str, planned: Path, server: EmulatorServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(planned.read_text())
    EDITS[edit](doc)
    planned.write_text(json.dumps(doc, indent=2))
    before = live(server)
    capsys.readouterr()

    assert iotc("apply", "plan.json") == 1

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert live(server) == before


def test_the_untouched_plan_applies(planned: Path, server: EmulatorServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("apply", "plan.json") == 0
    assert "Apply complete: 1 updated" in capsys.readouterr().out
    names = {d["uniqueId"]: d["displayName"] for d in live(server)["device"]}
    assert names["th-lab-02"] == "Lab sensor two"


def test_manifests_edited_after_the_plan_are_refused(
        planned: Path, work: Path, server: EmulatorServer,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text() + "# a comment is an edit too\n")
    before = live(server)
    assert iotc("apply", "plan.json") == 1
    err = capsys.readouterr().err
    assert "error: plan.json: the manifests in m (or the plan's options) differ from the " \
           "ones the plan was made from" in err
    assert live(server) == before


def test_a_plan_applies_in_another_checkout_with_manifests(
        planned: Path, work: Path, server: EmulatorServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The CI case: plan in one job, apply in another, the manifests somewhere else."""
    other = work / "checkout-2"
    shutil.copytree(work / "m", other / "fleet")
    shutil.copy(planned, other / "plan.json")
    shutil.copytree(work / "keys", other / "keys")
    monkeypatch.chdir(other)
    assert iotc("apply", "plan.json") == 1  # `m` does not exist here
    assert "error: plan.json: the manifests it was made from (m) do not load" in \
        capsys.readouterr().err
    assert iotc("apply", "plan.json", "--manifests", "fleet") == 0
    assert "Apply complete: 1 updated" in capsys.readouterr().out


@pytest.mark.usefixtures("applied")
def test_with_a_plan_key_plans_are_signed_and_unsigned_ones_refused(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    devices = work / "m" / "devices.yaml"
    devices.write_text(devices.read_text().replace("Lab sensor 2\n", "Lab sensor two\n"))
    assert iotc("plan", "m", "--out", "unsigned.json") == 0
    monkeypatch.setenv("IOTC_PLAN_KEY", "a shared secret of the CI")
    assert iotc("plan", "m", "--out", "signed.json") == 0
    assert json.loads(Path("signed.json").read_text())["signature"].startswith("hmac-sha256:")
    capsys.readouterr()
    assert iotc("apply", "unsigned.json") == 1
    assert "the plan is not signed, and IOTC_PLAN_KEY is set" in capsys.readouterr().err
    monkeypatch.setenv("IOTC_PLAN_KEY", "another secret")
    assert iotc("apply", "signed.json") == 1
    assert "signature does not match" in capsys.readouterr().err
    monkeypatch.setenv("IOTC_PLAN_KEY", "a shared secret of the CI")
    assert iotc("apply", "signed.json") == 0


def test_options_come_from_the_plan(planned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("apply", "plan.json", "--target", "device/th-lab-02") == 1
    assert "a saved plan carries its own --target" in capsys.readouterr().err


def test_a_change_the_service_accepts_but_loses_is_a_failure_not_done(
        planned: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The account is read back after apply: `done` only where it shows the change."""
    server.emulator.traffic.configure(Knobs(ignored_routes=("PUT /Device/<guid>",)))
    assert iotc("apply", "m", "--auto-approve") == 1
    out = capsys.readouterr().out
    assert "device/th-lab-02" in out and "the service accepted it, but the account does not " \
           "show it (a fresh plan still has update)" in out
    assert "Apply complete" not in out or "1 failed" in out
    server.emulator.traffic.configure(Knobs())
    assert iotc("apply", "m", "--auto-approve") == 0
