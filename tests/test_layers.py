"""The layers of DESIGN.md section 8 hold: import-linter checks the contracts in
pyproject.toml, and a copy of the package with one arrow pointing up is refused."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts, on the package found in `package_parent`."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                           "lint_imports_command; sys.exit(lint_imports_command())",
                           str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, env=env, capture_output=True, text=True,
                          timeout=300)


def test_every_import_contract_is_kept() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_arrows_up_and_network_in_the_planner_are_refused(tmp_path: Path) -> None:
    """The planner importing the executor (an arrow up) and the client (network in the
    pure core) each break their contract; the others still hold."""
    shutil.copytree(ROOT / "iotc_apply", tmp_path / "iotc_apply",
                    ignore=shutil.ignore_patterns("__pycache__"))
    planner = tmp_path / "iotc_apply" / "plan" / "planner.py"
    planner.write_text(planner.read_text() + "\n\nfrom ..apply import graph  # noqa\n"
                       "from ..client import IoTConnect  # noqa\n")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Layers: cli over operations over the core BROKEN" in done.stdout
    assert "No network in the planner, the manifests or the key store BROKEN" in done.stdout
    assert "rich only in ui/ KEPT" in done.stdout
    assert "iotc_apply.plan.planner -> iotc_apply.apply.graph" in done.stdout
    assert "iotc_apply.plan.planner -> iotc_apply.client" in done.stdout


def _declared(path: Path) -> set[str] | None:
    """The rooms a module's docstring says it may import (`May import: ...`), from its own
    docstring or else its package's; None for "any room"."""
    for source in (path, path.parent / "__init__.py"):
        doc = ast.get_docstring(ast.parse(source.read_text())) or ""
        found = re.search(r"May import: (.*?)\.(?:\s|$)", " ".join(doc.split()))
        if found:
            text = found[1]
            if text.startswith("any room"):
                return None
            return set(re.findall(r"`([a-z_]+)`", text))
    raise AssertionError(f"{path}: the docstring says nothing of what it may import")


def test_every_module_says_truly_what_it_may_import() -> None:
    """STYLE: every module says what it may import; the claim is checked, so it stays true
    (six had drifted when nothing checked them). The emulator has its own contract."""
    import grimp

    graph = grimp.build_graph("iotc_apply")
    wrong = []
    for path in sorted((ROOT / "iotc_apply").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if "emulator" in parts or module in ("iotc_apply", "iotc_apply.__main__"):
            continue
        room = module.split(".")[1]
        rooms = {m.split(".")[1] for m in graph.find_modules_directly_imported_by(module)
                 if m.count(".")} - {room}
        declared = _declared(path)
        if declared is not None and not rooms <= declared:
            wrong.append(f"{module} imports {sorted(rooms - declared)} beyond its docstring")
    assert wrong == []
