"""Plan scenarios: `tests/scenarios/<case>/` holds the starting state (`live/`, manifests
created straight through the client layer), the manifests to plan (`manifests/`), optional
`args`, `keys` (DUIDs with a local key) and `deprecate` (firmware to deprecate after seeding),
and `expected.txt`: the exit code and the exact output of
`iotc plan manifests --detailed-exitcode [args]`.
Regenerate with IOTC_UPDATE_GOLDEN=1 (then read every diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer
from iotc_apply.keystore import KeyStore

from .fleet import seed
from .support import account_keys, point_cli_at, steady

SCENARIOS = Path(__file__).parent / "scenarios"
CASES = sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir())
UPDATE = bool(os.environ.get("IOTC_UPDATE_GOLDEN"))


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("case", CASES)
def test_scenario(case: str, server: EmulatorServer, api: IoTConnect, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = SCENARIOS / case
    if (folder / "live").is_dir():
        seed(api, folder / "live", KeyStore(tmp_path / "seed-keys"))
    for name in _lines(folder / "deprecate"):
        found = api.firmware.get_by_name(name)
        assert found is not None
        api.firmware.deprecate(found.guid)
    keys = tmp_path / "keys"
    for duid in _lines(folder / "keys"):
        (account_keys(server, keys) / duid).mkdir(parents=True)
        (account_keys(server, keys) / duid / "key.pem").write_text("not a real key\n")
    point_cli_at(server, tmp_path / "config", monkeypatch)
    monkeypatch.chdir(folder)
    capsys.readouterr()

    code = main(["plan", "manifests", "--detailed-exitcode", "--keys-dir", str(keys),
                 *_lines(folder / "args")])

    actual = steady(f"exit {code}\n{capsys.readouterr().out}")
    if UPDATE:
        (folder / "expected.txt").write_text(actual)
    assert actual == (folder / "expected.txt").read_text()
