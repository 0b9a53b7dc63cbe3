"""Every README block marked ```sh test runs as written, on the emulator, in a fresh folder
with the repository's examples: the commands a reader copies keep working."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh test\n(.*?)^```", re.S | re.M)
BLOCKS = BLOCK.findall((ROOT / "README.md").read_text())


def test_the_readme_has_tested_blocks() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_block_runs(block: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTC_")}
    env.update(IOTC_CONFIG_DIR=str(tmp_path / "config"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    script = "set -e\n" + "\n".join(line for line in block.splitlines() if line.strip())
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
