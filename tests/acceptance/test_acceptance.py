"""The acceptance run: validate, plan, apply, converge, update, replace, destroy.

Every step goes through the command line as a user would (in process, so `--record` sees
the traffic) and every result is checked in the account through the client layer, never by
trusting the command's own report. See conftest.py for how to run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from iotc_apply.cli import main
from iotc_apply.client import IoTConnect

from .fleet import Fleet

T = TypeVar("T")

PARALLELISM = ["2"]


def eventually(check: Callable[[], T], timeout: float = 120.0, every: float = 1.0) -> T:
    """The first truthy result of `check` within `timeout` seconds: a real service may
    finish a change after answering (publish is a "process"), so reads poll."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(every)


def iotc(*args: str) -> int:
    if args[0] == "validate":
        return main(list(args))
    return main([*args, "--keys-dir", "keys", "--parallelism", PARALLELISM[0]])


def converged(capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m", "--detailed-exitcode") == 0, capsys.readouterr()
    assert "No changes." in capsys.readouterr().out


def applied(capsys: pytest.CaptureFixture[str]) -> str:
    code = iotc("apply", "m", "--auto-approve")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Apply complete:" in out and " failed" not in out, out
    return out


def test_the_fleet_lifecycle(fleet: Fleet, api: IoTConnect,
                             capsys: pytest.CaptureFixture[str]) -> None:
    a, b = fleet.templates
    PARALLELISM[0] = str(fleet.parallelism)
    assert iotc("validate", "m") == 0
    assert iotc("plan", "m", "--detailed-exitcode") == 2
    assert "15 to create" in capsys.readouterr().out

    applied(capsys)
    live = eventually(lambda: {d.duid: d for d in api.devices.list()
                               if d.duid.startswith(fleet.prefix)}
                      if len([d for d in api.devices.list() if d.duid.startswith(
                          fleet.prefix)]) == len(fleet.devices()) else None)
    assert live and sorted(live) == sorted(fleet.devices())
    firmware = eventually(lambda: api.firmware.get_by_name(fleet.firmware))
    assert firmware is not None
    upgrades = eventually(lambda: (lambda u: u if not u["1.0.0"].draft else None)(
        {u.version: u for u in api.firmware.upgrades(firmware.guid)}))
    assert upgrades and not upgrades["1.0.0"].draft and upgrades["1.1.0"].draft
    converged(capsys)

    # OTA (issue 31): the released upgrade onto one device of its template, read back
    on_template = [d for d in live.values() if d.template_guid == firmware.template_guid][:1]
    release = upgrades["1.0.0"].guid
    pushed = api.firmware.push_ota(release, [d.guid for d in on_template])
    assert [device for device, _ in pushed] == [d.guid for d in on_template]
    sent = eventually(lambda: [o for o, u in api.firmware.ota_updates() if u == release]
                      or None)
    assert sent and {i.device_guid for i in api.firmware.ota_items(sent[-1])} == \
        {d.guid for d in on_template}

    # export round trip: what the account holds, written back as manifests, plans clean
    assert iotc("export", "exported", "--match", f"device/{fleet.prefix}-*", "--match",
                f"firmware/{fleet.firmware}") == 0, capsys.readouterr()
    assert main(["validate", "exported"]) == 0, capsys.readouterr()
    assert iotc("plan", "exported", "--detailed-exitcode") == 0, capsys.readouterr().out
    capsys.readouterr()

    fleet.write(version=2)  # every kind changed in place
    applied(capsys)
    template = eventually(lambda: (lambda t: t if t and t.name.endswith(" v2") else None)(
        api.templates.get_by_code(a)))
    assert template is not None and template.name == f"Acceptance sensor {fleet.token} v2"
    attributes = {x.name: x for x in api.templates.attributes(template.guid)}
    assert sorted(attributes) == ["pressure", "temperature"]
    assert attributes["temperature"].unit == "F"
    commands = {c.command: c for c in api.templates.commands(template.guid)}
    assert sorted(commands) == ["blink", "reboot"] and not commands["reboot"].required_ack
    d1 = api.devices.get_by_duid(f"{fleet.prefix}-d01")
    d2 = api.devices.get_by_duid(f"{fleet.prefix}-d02")
    assert d1 is not None and d1.display_name == "Acceptance device 1 renamed"
    assert d2 is not None and d2.active is False
    # the registered certificate, where the platform shows one (Azure): the kept key's
    shown = api.devices.registered_certificate(d1.guid)
    assert (shown is not None) is (api.session.settings.pf == "az")
    firmware = api.firmware.get_by_name(fleet.firmware)
    assert firmware is not None and firmware.description == "Acceptance firmware (v2)"
    draft = {u.version: u for u in api.firmware.upgrades(firmware.guid)}["1.1.0"]
    assert draft.description == "Draft v2"
    converged(capsys)

    fleet.write(version=3)  # d03 moves to the other template (a replacement), blink goes
    assert iotc("plan", "m") == 0
    assert f"-/+ device/{fleet.prefix}-d03" in capsys.readouterr().out
    applied(capsys)
    d3 = api.devices.get_by_duid(f"{fleet.prefix}-d03")
    meter = api.templates.get_by_code(b)
    assert d3 is not None and meter is not None and d3.template_guid == meter.guid
    assert [c.command for c in api.templates.commands(template.guid)] == ["reboot"]
    converged(capsys)

    assert iotc("destroy", "m", "--auto-approve") == 0
    capsys.readouterr()
    assert not [d for d in api.devices.list() if d.duid.startswith(fleet.prefix)]
    assert api.templates.get_by_code(a) is None and api.templates.get_by_code(b) is None
    firmware = api.firmware.get_by_name(fleet.firmware)
    assert firmware is None or firmware.deprecated
    assert iotc("plan", "m", "--destroy", "--detailed-exitcode") == 0
