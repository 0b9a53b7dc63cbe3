"""The pre-commit hook, run by pre-commit itself (`pre-commit try-repo`), offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "manifests"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_the_hook_passes_good_manifests_and_stops_a_broken_one(tmp_path: Path) -> None:
    repo = tmp_path / "fleet-repo"
    shutil.copytree(EXAMPLES, repo / "manifests")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}", "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    command = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT),
               "iotc-validate-system", "--all-files"]
    ok = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "iotc validate (installed iotc)" in ok.stdout and "Passed" in ok.stdout
    devices = repo / "manifests" / "devices.yaml"
    devices.write_text(devices.read_text().replace("template: gateway01", "template: gatewy01",
                                                   1))
    _git(repo, "add", ".")
    bad = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "template 'gatewy01' is not declared (did you mean 'gateway01'?)" in bad.stdout
