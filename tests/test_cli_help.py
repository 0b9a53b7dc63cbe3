"""Help as good as kubectl's: a description and examples for every command, a help text for
every option, no option that does nothing, completion scripts, --version."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

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


def _bash_completes(script: str, words: list[str], cwd: str) -> list[str]:
    """What bash offers for the last word of `words`, with the completion script loaded."""
    line = " ".join(words)
    program = (f"source {script}\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)}); "
               f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT={len(line)}\n"
               "_shtab_iotc iotc \"${COMP_WORDS[-1]}\" \"${COMP_WORDS[-2]}\"\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash completion")
def test_bash_completes_paths_and_get_kinds(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 26: path arguments complete file names, `get` completes its kinds."""
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "iotc.bash"
    script.write_text(capsys.readouterr().out)
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet.yaml").write_text("")
    (tmp_path / "keys-a").mkdir()
    assert _bash_completes(str(script), ["iotc", "get", "d"], str(tmp_path)) == ["devices"]
    assert _bash_completes(str(script), ["iotc", "get", ""], str(tmp_path)) == sorted(
        ["templates", "devices", "firmware", "upgrades", "rollouts"])
    assert _bash_completes(str(script), ["iotc", "plan", "fle"], str(tmp_path)) == \
        ["fleet", "fleet.yaml"]
    assert _bash_completes(str(script), ["iotc", "plan", "fleet", "--keys-dir", "k"],
                           str(tmp_path)) == ["keys-a"]


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
