"""The small things a user meets (issue 28): globs that name their kind, sweeps that say
they found nothing, a lock that names its holder's command, Ctrl-C at the prompt, typos,
abbreviations, real elapsed times. Each failed on the code before."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.safefile import run_lock

from .support import iotc


@pytest.mark.parametrize("glob", ["pr44*", "lt-0001"])
def test_a_glob_without_a_kind_is_refused_with_a_hint(
        work: Path, glob: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["destroy", "--match", glob, "--auto-approve"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: --match '{glob}': an address glob names its kind: template/GLOB, "
        f"device/GLOB, firmware/GLOB; did you mean 'device/{glob}'?")


def test_a_sweep_that_matches_nothing_says_so(work: Path,  # noqa: F811
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["destroy", "--match", "device/pr44*", "--auto-approve"]) == 1
    assert "error: nothing matches 'device/pr44*'; pass --allow-empty" in \
        capsys.readouterr().err
    assert main(["destroy", "--match", "device/pr44*", "--auto-approve",
                 "--allow-empty"]) == 0


def test_the_lock_message_names_the_command_holding_it(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    with run_lock(work / "keys" / ".lock", command="destroy"):
        assert iotc("apply", "m", "--auto-approve") == 1
    assert "another destroy holds the lock since" in capsys.readouterr().err


def test_ctrl_c_at_the_prompt_says_nothing_was_changed(
        work: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("builtins.input", interrupted)
    assert iotc("apply", "m") == 130
    captured = capsys.readouterr()
    assert "Interrupted at the prompt; nothing was changed." in captured.out
    assert "error: interrupted" not in captured.err


@pytest.mark.parametrize(("argv", "message"), [
    (["aply", "m"], "invalid choice: 'aply' (choose from"),
    (["plan", "m", "--detailed"], "unrecognized arguments: --detailed"),
    (["plan", "m", "--detailed-exitcode", "--parallelism", "ten"],
     "argument --parallelism: invalid"),
])
def test_typos_get_a_suggestion_and_abbreviations_are_refused_with_exit_1(
        argv: list[str], message: str) -> None:
    """Exit 1, never argparse's 2: with --detailed-exitcode, 2 means "changes present", and a
    typo in a CI job's arguments read as a plan with changes (issue 26)."""
    done = subprocess.run([sys.executable, "-m", "iotc_apply", *argv], capture_output=True,
                          text=True)
    assert done.returncode == 1 and message in done.stderr
    if argv[0] == "aply":
        assert done.stderr.rstrip().endswith("did you mean 'apply'?")


def test_apply_reports_the_time_the_command_took(
        work: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """The walk alone read "(0.0 s)"; the verdict gives the whole command's time."""
    import time

    from iotc_apply import operations

    real = operations.plan_account

    def slow_plan(*args: object, **kwargs: object) -> object:
        time.sleep(0.3)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(operations, "plan_account", slow_plan)
    assert iotc("apply", "m", "--auto-approve") == 0
    seconds = float(re.search(r"back them up \((\d+\.\d) s\)\.", capsys.readouterr().out)[1])
    assert seconds >= 0.3
