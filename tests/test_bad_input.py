"""No input reaches an internal error: every command, fed bad paths, files and environment,
answers with one line and a non-zero exit (or works), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.emulator import EmulatorServer

BAD_ENV = [
    {},
    {"IOTC_DISCOVERY_URL": "discovery.example/api"},
    {"IOTC_DISCOVERY_URL": "http://127.0.0.1:9/api/uisdk"},
    {"IOTC_PF": "zz"},
    {"IOTC_ENV": "no such env"},
    {"IOTC_SKEY": "x" * 5000},
    {"IOTC_CONFIG_DIR": "/proc/nope"},
]
COMMANDS = [
    ["validate", "nowhere"], ["validate", "binary.yaml"], ["validate", "m", "nowhere"],
    ["plan", "nowhere"], ["plan", "m", "--out", "adir"], ["plan", "m", "--target", "bad"],
    ["plan", "m", "--target", "device/"], ["apply", "garbage.json", "--auto-approve"],
    ["apply", "adir", "--auto-approve"], ["apply", "m", "--keys-dir", "afile",
                                          "--auto-approve"],
    ["destroy", "m", "--keys-dir", "/proc/x", "--auto-approve"],
    ["export", "afile"], ["export", "out", "--match", "x"], ["get", "things"],
    ["get", "devices", "[x"], ["doctor", "--keys-dir", "afile"], ["whoami"],
    ["plan", "m", "--emulator=adir"], ["plan", "m", "--emulator=afile"],
    ["apply", "garbage.json", "--emulator=/proc/x/e.db"],
]


@pytest.fixture
def bad_files(work: Path) -> Path:  # noqa: F811
    (work / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (work / "garbage.json").write_text('{"format_version": "2", "changes": [1, 2, 3]')
    (work / "adir").mkdir()
    (work / "afile").write_text("not a folder")
    return work


@pytest.mark.parametrize("env", BAD_ENV, ids=lambda e: ",".join(e) or "emulator-env")
def test_no_command_reaches_an_internal_error(
        env: dict[str, str], bad_files: Path, server: EmulatorServer,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for args in COMMANDS:
        code = main(args)
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert "internal error" not in text and "Traceback" not in text, (args, text)
        if code != 0:
            assert text.strip(), (args, "a failure must say why")


def test_a_refused_connection_is_fast_and_says_where_and_what_to_try(
        work: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.client.retry import Retrying

    backoffs: list[int] = []
    monkeypatch.setattr(Retrying, "backoff", lambda self, attempt: backoffs.append(
        attempt) or 0.0)
    monkeypatch.setenv("IOTC_DISCOVERY_URL", "http://127.0.0.1:9/api/uisdk")
    assert main(["plan", "m"]) == 1
    assert backoffs == []  # not retried: nothing listens there, waiting would only hide it
    assert capsys.readouterr().err.strip() == (
        "error: GET discovery for pf=aws env=poc: cannot connect to http://127.0.0.1:9: "
        "connection refused; is the service up? (for the bundled emulator: start it with "
        "'iotc emulator serve', or pass --emulator)")
