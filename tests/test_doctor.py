"""`iotc doctor`: one line per check, exit 1 on any failure, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.emulator import EmulatorServer


def test_a_healthy_setup_passes_every_check(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["apply", "m", "--auto-approve", "--keys-dir", "keys"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--keys-dir", "keys"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line[5:].split(":")[0] for line in lines]
    assert names == ["target", "discovery", "login", "token refresh", "clock",
                     "list templates", "list devices", "list entities", "list firmware",
                     "list upgrades", "key store"]
    assert all(line.startswith("ok   ") for line in lines), lines
    assert "the iotc-apply emulator at 127.0.0.1 (not a real account)" in lines[0]
    assert "key store: keys writable, mode 700, 1 folder(s)" in lines[-1]


def test_a_wrong_password_fails_login_once_and_shows_no_secret(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IOTC_PASS", "wrong-secret-123")
    server.emulator.traffic.reset_counts()
    assert main(["doctor", "--keys-dir", "keys"]) == 1
    out = capsys.readouterr().out
    assert "fail login: login refused for admin@example.com" in out
    assert "warn account checks: skipped: no login" in out
    assert "ok   key store: keys does not exist yet; apply creates it" in out
    assert "wrong-secret-123" not in out
    assert server.emulator.state.account.solution_key not in out
    assert server.emulator.traffic.counts["POST /Auth/login"] == 1


def test_an_open_key_store_is_a_warning_and_a_symlinked_one_a_failure(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    (work / "keys").mkdir(mode=0o755)
    (work / "keys").chmod(0o755)
    assert main(["doctor", "--keys-dir", "keys"]) == 0
    assert "warn key store: keys is readable by others (mode 755); run: chmod 700 keys" in \
        capsys.readouterr().out
    (work / "elsewhere").mkdir()
    (work / "linked").symlink_to(work / "elsewhere")
    assert main(["doctor", "--keys-dir", "linked"]) == 1
    assert "fail key store: linked is a symlink; the key store follows none" in \
        capsys.readouterr().out


def test_a_wrong_solution_key_fails_discovery(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IOTC_SKEY", "not-the-solution-key")
    assert main(["doctor", "--keys-dir", "keys"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1].startswith("fail discovery: ") and len(out) == 2
    assert "not-the-solution-key" not in "".join(out)
