"""`iotc login`, `whoami`, `logout` and `emulator serve` as a user runs them."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from iotc_apply.cli import main
from iotc_apply.emulator import EmulatorServer


@pytest.fixture
def env(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    acc = server.emulator.state.account
    monkeypatch.setenv("IOTC_DISCOVERY_URL", server.discovery_url)
    monkeypatch.setenv("IOTC_SKEY", acc.solution_key)
    monkeypatch.setenv("IOTC_USER", acc.user_email)
    monkeypatch.setenv("IOTC_PASS", acc.user_password)
    monkeypatch.setenv("IOTC_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg" / "credentials.json"


def test_login_whoami_logout(env: Path, server: EmulatorServer,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["login"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Logged in as admin@example.com (pf=aws, env=poc, cpId=")
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600
    monkeypatch.delenv("IOTC_PASS")
    monkeypatch.delenv("IOTC_USER")
    assert main(["whoami"]) == 0
    out = capsys.readouterr().out
    assert "cpId:        0A1B2C3D4E5F60718293A4B5C6D7E8F9" in out and "platform:    aws" in out
    token = env.read_text()
    assert "access_token" in token
    for secret in (server.emulator.state.account.user_password, "eyJ"):
        assert secret not in out
    assert main(["logout"]) == 0 and not env.exists()
    assert main(["whoami"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: not logged in: run 'iotc login' or set IOTC_USER, " \
                          "IOTC_PASS and IOTC_SKEY"


def test_login_without_a_password_or_terminal_is_refused(
        env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("IOTC_PASS")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["login"]) == 1
    assert "no password: set IOTC_PASS" in capsys.readouterr().err


def test_wrong_password_is_one_line(env: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IOTC_PASS", "wrong")
    assert main(["login"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: login refused for admin@example.com: POST /Auth/login: HTTP 401: "
                   "Invalid username or password; not retried (repeated attempts can lock the "
                   "account)"]


def test_emulator_flag_keeps_state_in_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--emulator", "whoami"]) == 0
    assert main(["whoami", "--emulator=other.db"]) == 0
    assert (tmp_path / ".iotc" / "emulator.db").exists() and (tmp_path / "other.db").exists()


def test_emulator_serve_prints_the_environment_and_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "iotc_apply", "emulator", "serve", "--db",
                             str(tmp_path / "e.db"), "--page-size", "7"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(7)]  # type: ignore[union-attr]
        exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in lines[1:])
        url = exports["IOTC_DISCOVERY_URL"].strip("'")
        assert url.startswith("http://127.0.0.1:")
        skey = exports["IOTC_SKEY"].strip("'")
        answer = requests.get(f"{url}/solutionkey/{skey}/env/poc", timeout=5).json()
        assert answer["data"]["deviceBaseUrl"].endswith("/device/api/v2.1")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode is not None
