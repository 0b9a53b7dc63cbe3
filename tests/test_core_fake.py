"""The pure core on an in-memory client (tests/fake.py): snapshot, planner and executor,
no HTTP. The same flows run against the emulator in test_e2e.py; these pin the core's own
rules in milliseconds: convergence, order, failure isolation, lost answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from iotc_apply import snapshot
from iotc_apply.apply.actions import Actions
from iotc_apply.apply.executor import ApplyResult, Status, execute
from iotc_apply.client.errors import ServerError, TransportError
from iotc_apply.keystore import KeyStore
from iotc_apply.manifest import load
from iotc_apply.model import Address, Desired, DesiredDevice, DesiredFirmware, DesiredTemplate, Kind
from iotc_apply.plan import Action, Plan, PlanOptions, make_plan

from .fake import FakeIoTConnect
from .support import EXAMPLES


@pytest.fixture(scope="module")
def desired() -> Desired:
    loaded = load([str(EXAMPLES)])
    assert loaded.ok
    return loaded.desired


def plan_of(api: FakeIoTConnect, desired: Desired, keys: KeyStore) -> Plan:
    snap = snapshot.take(api, [t.code for t in desired.of(DesiredTemplate)],  # type: ignore[arg-type]
                         [f.name for f in desired.of(DesiredFirmware)])
    return make_plan(desired, snap, PlanOptions(local_keys=keys.duids()))


def apply(api: FakeIoTConnect, plan: Plan, keys: KeyStore) -> ApplyResult:
    return execute(plan, Actions(api, keys, plan), parallelism=4)  # type: ignore[arg-type]


def test_the_examples_apply_and_then_plan_clean(desired: Desired, tmp_path: Path) -> None:
    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    plan = plan_of(api, desired, keys)
    assert plan.errors == () and plan.counts[Action.CREATE] == 65
    result = apply(api, plan, keys)
    assert {r.status for r in result.results} == {Status.DONE}
    assert len(api.devices.by_guid) == 60 and len(api.templates.by_guid) == 2
    assert keys.written == 60 and all(keys.has_key(d.duid) for d in api.devices.by_guid.values())
    again = plan_of(api, desired, keys)
    assert again.changes == () and again.unchanged == 65 and again.warnings == ()


def test_templates_before_their_devices_and_devices_before_their_template_goes(
        desired: Desired, tmp_path: Path) -> None:
    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    apply(api, plan_of(api, desired, keys), keys)
    creates = [c for c in api.calls if c.endswith(".create")]
    assert creates.index("templates.create") < creates.index("devices.create")
    api.calls.clear()
    teardown = make_plan(desired, snapshot.take(api, None, None),  # type: ignore[arg-type]
                         PlanOptions(destroy=True))
    result = apply(api, teardown, keys)
    assert all(r.status is Status.DONE for r in result.results)
    deletes = [c for c in api.calls if c.endswith(".delete")]
    assert deletes.index("templates.delete") > max(
        i for i, c in enumerate(deletes) if c == "devices.delete")
    assert api.devices.by_guid == {} and api.templates.by_guid == {}


def test_a_failed_template_skips_its_devices_only(desired: Desired, tmp_path: Path) -> None:
    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    api.fail("templates.create", ServerError("POST", "/device-template/quick", 500, "boom"))
    result = apply(api, plan_of(api, desired, keys), keys)
    by_status: dict[Status, list[Address]] = {}
    for r in result.results:
        by_status.setdefault(r.status, []).append(r.address)
    failed = by_status[Status.FAILED]
    assert len(failed) == 1 and failed[0].kind is Kind.TEMPLATE
    code = failed[0].name
    on_it = {d.address for d in desired.of(DesiredDevice) if d.template == code}
    skipped = set(by_status[Status.SKIPPED])
    assert on_it and on_it <= skipped
    assert {a.kind for a in skipped} <= {Kind.DEVICE, Kind.FIRMWARE, Kind.UPGRADE}
    others = {d.address for d in desired.of(DesiredDevice)} - on_it
    assert others <= set(by_status[Status.DONE])
    assert api.templates.get_by_code(code) is None
    # the run converges: a second apply creates exactly what was skipped or failed
    rerun = plan_of(api, desired, keys)
    assert {c.address for c in rerun.changes} == set(failed) | set(skipped)
    assert all(r.status is Status.DONE for r in apply(api, rerun, keys).results)
    assert plan_of(api, desired, keys).changes == ()


def test_a_create_whose_answer_was_lost_is_read_back_not_repeated(
        desired: Desired, tmp_path: Path) -> None:
    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    lost = TransportError("dropped the connection before answering", "POST", "/Device",
                          ambiguous=True)
    api.fail("devices.create", lost, times=3, after=True)
    result = apply(api, plan_of(api, desired, keys), keys)
    devices = [r for r in result.results if r.address.kind is Kind.DEVICE]
    # the service kept them; on AWS it shows no registered certificate, so three devices are
    # found but unverified, never created twice
    assert sorted(r.status.value for r in devices).count("unverified") == 3
    assert len(api.devices.by_guid) == 60
    assert api.calls.count("devices.create") == 60


def test_an_unchanged_device_shortcut_agrees_with_the_full_diff(
        desired: Desired, tmp_path: Path) -> None:
    """The planner skips building records for unchanged devices; every compared field still
    counts: each one changed live gives exactly one change for that device."""
    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    apply(api, plan_of(api, desired, keys), keys)
    guid, device = next(iter(api.devices.by_guid.items()))
    other_entity = next(e for e in api.entity_list if e.name != device.entity_name)
    for change in ({"display_name": "renamed"}, {"active": not device.active},
                   {"entity_name": other_entity.name, "entity_guid": other_entity.guid}):
        api.devices.by_guid[guid] = device._replace(**change)
        plan = plan_of(api, desired, keys)
        assert [(str(c.address), c.action) for c in plan.changes] == [
            (f"device/{device.duid}", Action.UPDATE)], change
    api.devices.by_guid[guid] = device
    assert plan_of(api, desired, keys).changes == ()


def test_a_unique_id_live_on_a_template_nothing_declares_is_a_plan_error(
        desired: Desired, tmp_path: Path) -> None:
    """Replacing it would delete another team's device (issue 27: the account refuses a
    second device of that unique ID, and nothing here manages its template)."""
    from .support import template

    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    theirs = api.templates.create(template("theirs01", "Theirs"))
    root = api.entity_list[0].guid
    api.devices.create(theirs, "gw-0001", "their gateway", root)
    plan = plan_of(api, desired, keys)
    assert [(e.code, e.address) for e in plan.errors] == [("duid-taken", "device/gw-0001")]
    assert "live on template/theirs01, which the manifests do not declare" in \
        plan.errors[0].message
    assert "device/gw-0001" not in {str(c.address) for c in plan.changes}


def test_delete_caps_and_an_emptied_template_are_plan_errors(
        desired: Desired, tmp_path: Path) -> None:
    """Project.spec.guards.maxDeletes as a count and as a share of a template's live
    devices; the file that vanished (a kept template losing all its devices); and
    --allow-deletes N lifting both for one run (issue 30)."""
    from iotc_apply.model import DesiredProject, Globs, Guards

    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    apply(api, plan_of(api, desired, keys), keys)
    gateways = {a: r for a, r in desired.resources.items()
                if isinstance(r, DesiredDevice) and r.template == "gateway01"}
    prune_all = Globs(devices=("*",))

    def plan_with(guards: Guards, drop: set[Address], allow: int | None = None) -> Plan:
        kept = dataclasses.replace(desired, resources={
            a: r for a, r in desired.resources.items() if a not in drop},
            project=DesiredProject("p", prune=prune_all, guards=guards))
        snap = snapshot.take(api, None, None)  # type: ignore[arg-type]
        return make_plan(kept, snap, PlanOptions(local_keys=keys.duids(),
                                                 allow_deletes=allow))

    two = set(list(gateways)[:2])
    assert plan_with(Guards(max_deletes=2), two).errors == ()
    capped = plan_with(Guards(max_deletes=1), two).errors
    assert [(e.code, e.address) for e in capped] == [("max-deletes", None)]
    assert "deletes or replaces 2 device(s), more than Project.spec.guards.maxDeletes (1); " \
           "pass --allow-deletes 2" in capped[0].message
    share = plan_with(Guards(max_deletes_percent=50), two).errors  # 2 of 3 gateways: 67%
    assert [(e.code, e.address) for e in share] == [("max-deletes", "template/gateway01")]
    emptied = plan_with(Guards(), set(gateways)).errors  # the template stays, no devices
    assert [(e.code, e.address) for e in emptied] == [("template-emptied",
                                                       "template/gateway01")]
    assert plan_with(Guards(), set(gateways), allow=3).errors == ()
    assert [e.code for e in plan_with(Guards(), set(gateways), allow=2).errors] == [
        "max-deletes"]


def test_a_sweep_of_every_name_of_a_kind_needs_all(tmp_path: Path) -> None:
    from iotc_apply.model import Globs
    from iotc_apply.plan import make_sweep

    api = FakeIoTConnect()
    snap = snapshot.take(api, None, None)  # type: ignore[arg-type]
    for glob in ("device/*", "template/**", "FIRMWARE/*?*"):
        plan = make_sweep(snap, (glob,), Globs())
        assert [e.code for e in plan.errors] == ["whole-kind"], glob
        assert make_sweep(snap, (glob,), Globs(), everything=True).errors == ()
    assert make_sweep(snap, ("device/pr-*",), Globs()).errors == ()


def test_a_renamed_template_and_a_deactivated_device_are_updated_in_place(
        desired: Desired, tmp_path: Path) -> None:
    """Updates (not replacements) of both kinds through the executor: the template keeps
    its GUID under its new display name, the device its GUID with `active` off."""
    api, keys = FakeIoTConnect(), KeyStore(tmp_path / "keys")
    apply(api, plan_of(api, desired, keys), keys)
    template = next(t for t in desired.of(DesiredTemplate))
    device = next(d for d in desired.of(DesiredDevice) if d.template == template.code)
    changed = Desired({**desired.resources,
                       template.address: dataclasses.replace(template, name="Renamed sensor"),
                       device.address: dataclasses.replace(device, active=False)},
                      desired.origins, desired.project, desired.rollouts)
    plan = plan_of(api, changed, keys)
    assert {(str(c.address), c.action) for c in plan.changes} == {
        (str(template.address), Action.UPDATE), (str(device.address), Action.UPDATE)}
    guids = {t.code: t.guid for t in api.templates.by_guid.values()}
    assert {r.status for r in apply(api, plan, keys).results} == {Status.DONE}
    renamed = next(t for t in api.templates.by_guid.values() if t.code == template.code)
    assert (renamed.guid, renamed.name) == (guids[template.code], "Renamed sensor")
    live = next(d for d in api.devices.by_guid.values() if d.duid == device.duid)
    assert live.active is False
    assert plan_of(api, changed, keys).changes == ()
