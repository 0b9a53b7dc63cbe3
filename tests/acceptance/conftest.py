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
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.client import IoTConnect
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore

from .fleet import Fleet

REQUIRED = ("IOTC_USER", "IOTC_PASS", "IOTC_SKEY", "IOTC_PF", "IOTC_ENV")


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
    fleet = Fleet(tmp_path / "m", secrets.token_hex(3), parallelism=1 if record else 10)
    fleet.write(version=1)
    cassette = _recording(Path(record), fleet.prefix) if record else None
    try:
        if cassette is not None:
            with cassette:
                yield fleet
        else:
            yield fleet
    finally:
        left = _cleanup(fleet, api)
        if left:
            print(f"acceptance cleanup could not remove: {', '.join(left)}", file=sys.stderr)
            pytest.fail(f"cleanup left {len(left)} object(s) behind: {', '.join(left)}")


def _recording(folder: Path, prefix: str):  # type: ignore[no-untyped-def]
    from ..vcr_rules import recorder

    folder.mkdir(parents=True, exist_ok=True)
    return recorder(folder, "all").use_cassette(f"acceptance-{prefix}.yaml")


def _cleanup(fleet: Fleet, api: IoTConnect) -> list[str]:
    """Destroy what the manifests of any version declared; list what still exists."""
    for version in (3, 2, 1):
        fleet.write(version)
        main(["destroy", "m", "--auto-approve", "--keys-dir", "keys", "--parallelism",
              str(fleet.parallelism)])
    left = [f"device/{d.duid}" for d in api.devices.list() if d.duid.startswith(fleet.prefix)]
    left += [f"template/{t.code}" for t in api.templates.list()
             if t.code.lower().startswith(fleet.code_prefix)]
    left += [f"firmware/{f.name}" for f in api.firmware.list()
             if f.name.startswith(fleet.firmware) and not f.deprecated]
    return left
