"""What users install is what was tested: the sdist and wheel build, pass `twine check`,
carry every file `iotc` reads at run time, and the wheel works from a fresh virtual
environment outside the checkout. The version is written once.

The fresh environment takes the wheel with `--no-deps --no-index`, and its dependencies from
this environment's site-packages through a `.pth` line (pip does not process the `.pth`
files of a directory added that way, so this checkout's editable install stays out): the
test needs no index, and the wheel's own `iotc_apply` is the one imported, which it checks.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import iotc_apply

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", ".iotc", "build", "dist", "*.egg-info",
                              "__pycache__", ".pytest_cache", ".ruff_cache")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode in (0, 2), f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel, built without isolation (the backend comes from the lock) from
    a copy of the checkout, so the build leaves nothing behind in it. Built once per run:
    the xdist workers that run this module's tests share the folder above their own, the
    first one builds under a lock (each worker building its own cost ~2 s of CPU apiece)."""
    base = tmp_path_factory.getbasetemp()  # under xdist, a worker's: this run's is above
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dist"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "built").exists():
            shutil.copytree(ROOT, shared / "src", ignore=SKIP)
            _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", shared / "out",
                 shared / "src", cwd=shared)
            (shared / "built").touch()
    return shared / "out"


@pytest.mark.slow
def test_the_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    version = iotc_apply.__version__
    assert files == [f"iotc_apply-{version}-py3-none-any.whl", f"iotc_apply-{version}.tar.gz"]
    done = _run(sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir(), cwd=dist)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_carries_everything_iotc_reads(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "iotc_apply"
    wanted = {p.relative_to(ROOT).as_posix() for p in package.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert len(wanted) > 60 and wanted <= names, sorted(wanted - names)
    assert {"iotc_apply/py.typed", "iotc_apply/schemas/plan.schema.json",
            "iotc_apply/schemas/device.schema.json"} <= names
    metadata = zipfile.ZipFile(wheel).read(
        f"iotc_apply-{iotc_apply.__version__}.dist-info/METADATA").decode()
    assert f"Version: {iotc_apply.__version__}\n" in metadata
    assert "Requires-Dist: PyYAML" in metadata and "Requires-Python: >=3.11" in metadata


@pytest.mark.slow
def test_the_wheel_works_from_a_fresh_environment(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # a venv without its own pip (ensurepip alone cost 5.6 s of CPU): this environment's
    # pip installs into it (`pip --python`, pip >= 22.3)
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    py = venv / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps",
         "--no-index", wheel, cwd=tmp_path)
    found = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                 cwd=tmp_path).stdout.strip()
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(found) / "test-dependencies.pth").write_text("\n".join(sorted(here)) + "\n")

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTC_")}
    env.update(IOTC_CONFIG_DIR=str(tmp_path / "config"), PATH=f"{venv / 'bin'}:/usr/bin:/bin")
    iotc = venv / "bin" / "iotc"
    where = _run(py, "-c", "import iotc_apply; print(iotc_apply.__file__)", cwd=tmp_path,
                 env=env).stdout
    assert where.startswith(str(venv)), where

    assert _run(iotc, "--version", cwd=tmp_path, env=env).stdout == \
        f"iotc {iotc_apply.__version__}\n"
    validated = _run(iotc, "validate", "examples/manifests", cwd=tmp_path, env=env)
    assert validated.returncode == 0 and "Valid: 6 files, 15 documents, 65 resources." in \
        validated.stdout
    applied = _run(iotc, "apply", "examples/manifests", "--emulator=emu.db", "--auto-approve",
                   cwd=tmp_path, env=env)
    assert "Apply complete: 65 created" in applied.stdout, applied.stdout[-2000:]
    planned = _run(iotc, "plan", "examples/manifests", "--emulator=emu.db",
                   "--detailed-exitcode", cwd=tmp_path, env=env)
    assert planned.returncode == 0 and "No changes." in planned.stdout


def test_one_version_everywhere() -> None:
    """`__version__` is the one written; the metadata, `--version` and every documented
    action tag follow it."""
    from importlib.metadata import version

    from iotc_apply.cli import main

    assert version("iotc-apply") == iotc_apply.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and '\nversion = "' not in pyproject
    with pytest.raises(SystemExit):
        main(["--version"])
    docs = [ROOT / "README.md", ROOT / "action.yml",
            *(ROOT / "examples" / "github-actions").glob("*.yml")]
    tags = [tag for doc in docs
            for tag in re.findall(r"iotc-apply/iotc-apply@([\w.-]+)", doc.read_text())]
    assert len(tags) >= 5 and set(tags) == {f"v{iotc_apply.__version__}"}


def test_the_action_installs_only_what_it_ships() -> None:
    import yaml

    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert "version" not in action["inputs"]
    (step,) = [s for s in action["runs"]["steps"] if s.get("name") == "install iotc-apply"]
    commands = [" ".join(line.split()) for line in step["run"].replace("\\\n", " ")
                .splitlines()]
    installs = [c for c in commands if "pip install" in c or "pip wheel" in c]
    assert installs == [
        'python -m pip install --quiet --require-hashes -r '
        '"$GITHUB_ACTION_PATH/requirements.txt"',
        'python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$wheels" '
        '"$GITHUB_ACTION_PATH"',
        'python -m pip install --quiet --no-deps --no-index "$wheels"/iotc_apply-*.whl']
    for workflow in (ROOT / "examples" / "github-actions").glob("*.yml"):
        assert "pip install" not in workflow.read_text(), workflow.name
