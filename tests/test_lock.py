"""The lock and pyproject.toml say the same thing, so an install can never pick a release
nobody chose (PyYAML 6.0.4 once turned a fresh install red with no change in the project).

`requirements-dev.txt` and `requirements.txt` are made by `.ci/lock` (uv). Each
declared dependency must be pinned there, inside its declared range, with hashes; nothing may
be pinned as a direct dependency that pyproject.toml does not declare; the two files agree on
every package they share. The checker is tested on broken inputs too, so it cannot pass by
reading nothing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEV = (ROOT / "requirements-dev.txt").read_text()
RUNTIME = (ROOT / "requirements.txt").read_text()
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


@dataclass
class Pin:
    version: str
    hashes: int
    via: str


def parse_lock(text: str) -> dict[str, Pin]:
    """Every `name==version` of a uv (or pip-tools) lock, its hash count and its `# via`."""
    pins: dict[str, Pin] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    for entry in entries:
        found = PIN.match(entry)
        if found:
            via = " ".join(re.findall(r"#\s+(?:via\s+)?(.*)", entry))
            pins[canonicalize_name(found[1])] = Pin(found[2], entry.count("--hash=sha256:"),
                                                    via)
    return pins


def declared(pyproject: dict, extras: tuple[str, ...]) -> list[Requirement]:
    """What pyproject.toml asks for: dependencies, the given extras, the build backend."""
    project = pyproject["project"]
    lines = [*project["dependencies"], *pyproject["build-system"]["requires"]]
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def lock_problems(pyproject: dict, lock: str, extras: tuple[str, ...]) -> list[str]:
    """How a lock disagrees with pyproject.toml; empty when it does not."""
    pins = parse_lock(lock)
    wanted = {canonicalize_name(r.name): r for r in declared(pyproject, extras)}
    problems = []
    for name, requirement in sorted(wanted.items()):
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{name}: declared in pyproject.toml, not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{name}: locked at {pin.version}, outside {requirement.specifier}")
    for name, pin in sorted(pins.items()):
        if pin.hashes == 0:
            problems.append(f"{name}: pinned without hashes")
        direct = "pyproject.toml" in pin.via
        if direct and name not in wanted:
            problems.append(f"{name}: in the lock as a direct dependency, not in pyproject.toml")
    return problems


def test_the_dev_lock_agrees_with_pyproject() -> None:
    extras = tuple(PYPROJECT["project"]["optional-dependencies"])
    assert lock_problems(PYPROJECT, DEV, extras) == []


def test_the_runtime_lock_agrees_with_pyproject_and_has_no_test_tools() -> None:
    assert lock_problems(PYPROJECT, RUNTIME, ()) == []
    pins = parse_lock(RUNTIME)
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        for line in extra:
            name = canonicalize_name(Requirement(line).name)
            assert name not in pins or "pyproject.toml" not in pins[name].via, name


def test_the_two_locks_agree_on_every_shared_pin() -> None:
    dev, runtime = parse_lock(DEV), parse_lock(RUNTIME)
    assert len(runtime) >= 20 and set(runtime) <= set(dev)
    assert {n: p.version for n, p in runtime.items()} == \
        {n: dev[n].version for n in runtime}


def _without(pyproject: dict, name: str) -> dict:
    copy = {**pyproject, "project": {**pyproject["project"]}}
    copy["project"]["dependencies"] = [d for d in pyproject["project"]["dependencies"]
                                       if not d.lower().startswith(name.lower())]
    return copy


@pytest.mark.parametrize(("change", "problem"), [
    ("a dependency only in pyproject", "newpkg: declared in pyproject.toml, not in the lock"),
    ("a dependency only in the lock", "pyyaml: in the lock as a direct dependency, not in "
                                      "pyproject.toml"),
    ("a pin outside the range", "pyyaml: locked at 6.0.4, outside <6.0.4,>=6.0"),
    ("a pin without hashes", "pyyaml: pinned without hashes"),
])
def test_the_checker_sees_each_disagreement(change: str, problem: str) -> None:
    pyproject, lock = PYPROJECT, RUNTIME.replace(
        f"pyyaml=={parse_lock(RUNTIME)['pyyaml'].version}", "pyyaml==6.0.4")
    deps = pyproject["project"]["dependencies"]
    if change == "a dependency only in pyproject":
        pyproject = {**pyproject, "project": {**pyproject["project"],
                                              "dependencies": [*deps, "newpkg>=1"]}}
    elif change == "a dependency only in the lock":
        pyproject = _without(pyproject, "PyYAML")
    elif change == "a pin outside the range":
        pyproject = {**_without(pyproject, "PyYAML")}
        pyproject["project"]["dependencies"] += ["PyYAML>=6.0,<6.0.4"]
    else:
        lock = re.sub(r"(pyyaml==6\.0\.4[^\n]*\n)(?:\s+--hash=[^\n]*\n)+", r"\1", lock)
    assert problem in lock_problems(pyproject, lock, ())
