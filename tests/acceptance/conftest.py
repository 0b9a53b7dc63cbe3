"""The acceptance suite's setting: a real account (or `iotc emulator serve`) from the
environment, a unique prefix per run, and a cleanup that runs whatever happens.

Skipped unless IOTC_ACCEPTANCE=1 with IOTC_USER, IOTC_PASS, IOTC_SKEY, IOTC_PF and IOTC_ENV
set (IOTC_DISCOVERY_URL too for an emulator). Nothing here knows whether the account is
real: the same code runs in CI against `iotc emulator serve` (tests/test_acceptance_runs.py),
so it cannot rot, and against a real account by changing only the environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iotc_apply.cli import main
from iotc_apply.client import IoTConnect
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore

from .fleet import Fleet

REQUIRED = ("IOTC_USER", "IOTC_PASS", "IOTC_SKEY", "IOTC_PF", "IOTC_ENV")
SUMMARY: list[str] = []  # what the run did, printed at the end for the user's report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [v for v in REQUIRED if not os.environ.get(v)]
    if os.environ.get("IOTC_ACCEPTANCE") == "1" and not missing:
        return
    why = "set IOTC_ACCEPTANCE=1" if os.environ.get("IOTC_ACCEPTANCE") != "1" else \
        f"missing {', '.join(missing)}"
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=f"acceptance suite: {why}"))


@pytest.fixture
def api(tmp_path: Path) -> IoTConnect:
    settings = Settings.from_env(os.environ, config_dir=tmp_path / "config")
    return IoTConnect(ApiSession(settings, TokenStore(None)))


@pytest.fixture
def fleet(tmp_path: Path, api: IoTConnect, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """Manifests under a unique prefix; destroyed and checked afterwards, even on failure."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IOTC_CONFIG_DIR", str(tmp_path / "config"))
    record = request.config.getoption("--record")
    # parallelism 2 (1 while recording: vcrpy loses interactions recorded by threads), with
    # the client's rate throttle: a real account's limits are unknown
    fleet = Fleet(tmp_path / "m", secrets.token_hex(3), parallelism=1 if record else 2)
    fleet.write(version=1)
    me = api.session.identity()
    cassette = _recording(Path(record), fleet.prefix, me.cpid, me.username) if record else None
    try:
        if cassette is not None:
            with cassette:
                yield fleet
        else:
            yield fleet
    finally:
        left, notes = _cleanup(fleet, api)
        SUMMARY.extend(f"acceptance cleanup: {note}" for note in notes)
        SUMMARY.append(f"acceptance summary: run {fleet.token} on {me.pf}/{me.env}: 2 "
                       f"templates, {len(fleet.devices())} devices, 1 firmware with 2 "
                       "upgrades created, changed in place, one device replaced, all "
                       f"destroyed; left behind: {', '.join(left) or 'nothing'}")
        if left:
            pytest.fail(f"cleanup left {len(left)} object(s) behind: {', '.join(left)}")


def _recording(folder: Path, prefix: str, *identifying: str):  # type: ignore[no-untyped-def]
    from ..vcr_rules import Identifiers, recorder

    folder.mkdir(parents=True, exist_ok=True)
    return recorder(folder, "all", Identifiers(*identifying)).use_cassette(
        f"acceptance-{prefix}.yaml")


def _cleanup(fleet: Fleet, api: IoTConnect) -> tuple[list[str], list[str]]:
    """Destroy what the manifests of any version declared; list what still exists, and
    one line for each object the service cannot delete (firmware is only deprecated)."""
    for version in (3, 2, 1):
        fleet.write(version)
        main(["destroy", "m", "--auto-approve", "--keys-dir", "keys", "--parallelism",
              str(fleet.parallelism)])
    left = [f"device/{d.duid}" for d in api.devices.list() if d.duid.startswith(fleet.prefix)]
    left += [f"template/{t.code}" for t in api.templates.list()
             if t.code.lower().startswith(fleet.code_prefix)]
    firmware = [f for f in api.firmware.list() if f.name.startswith(fleet.firmware)]
    left += [f"firmware/{f.name}" for f in firmware if not f.deprecated]
    notes = [f"firmware/{f.name} is deprecated; IoTConnect deletes no firmware, remove it in "
             "the web UI if it must go" for f in firmware if f.deprecated]
    return left, notes
