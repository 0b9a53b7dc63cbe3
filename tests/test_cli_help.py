"""Help as good as kubectl's: a description and examples for every command, a help text for
every option, no option that does nothing, completion scripts, --version."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from iotc_apply.cli import build_parser, main
from iotc_apply.emulator import EmulatorServer

from .support import point_cli_at


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def test_every_command_has_a_description_examples_and_help_for_each_option() -> None:
    commands = _subcommands(build_parser())
    assert {"validate", "plan", "apply", "destroy", "get", "export", "doctor", "login",
            "completion", "emulator serve"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, name
        if name != "emulator":
            assert sub.epilog and sub.epilog.startswith("examples:"), name
        for action in sub._actions:
            if action.option_strings or action.dest not in ("help",):
                assert action.help, (name, action.dest)


def test_options_that_do_nothing_are_not_offered() -> None:
    commands = _subcommands(build_parser())
    options = {name: {o for a in sub._actions for o in a.option_strings}
               for name, sub in commands.items()}
    assert "--emulator" not in options["validate"] and "--emulator" in options["plan"]
    assert "--no-prune" not in options["destroy"] and "--no-prune" in options["apply"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_are_generated_from_the_parser(
        shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "iotc" in script and "validate" in script and "--detailed-exitcode" in script


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "iotc_apply", "--version"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("iotc ")


def test_login_reads_the_password_from_stdin(
        server: EmulatorServer, tmp_path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
        capsys: pytest.CaptureFixture[str]) -> None:
    import io

    point_cli_at(server, tmp_path / "config", monkeypatch)
    password = server.emulator.state.account.user_password
    monkeypatch.delenv("IOTC_PASS")
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(["login", "--password-stdin"]) == 0
    assert "Logged in as admin@example.com" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["login", "--password-stdin"]) == 1
    assert "standard input holds no password" in capsys.readouterr().err
