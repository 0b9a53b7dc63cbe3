"""A newcomer's first hour, replayed on the emulator and compared with a golden transcript.

Each step is what a user coming from terraform or kubectl does in the first hour with the
README open: validate, plan, apply, remove a device from the manifests, mistype a target,
break a template, save a plan and apply it, destroy, forget to start the emulator, point
`--emulator` at a folder, indent with a tab. The transcript (commands, exit codes, output)
is compared with tests/golden/first-hour.txt after masking what changes between runs
(timings, GUIDs, the temporary folder). Regenerate with IOTC_UPDATE_GOLDEN=1, then read the
diff: it is the product's first impression.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from iotc_apply.cli import main

from .support import steady

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "manifests"
GOLDEN = Path(__file__).parent / "golden" / "first-hour.txt"
UPDATE = bool(os.environ.get("IOTC_UPDATE_GOLDEN"))
GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_the_first_hour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("IOTC_") or name == "NO_COLOR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("IOTC_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, tmp_path / "fleet")
    transcript: list[str] = []

    def run(*args: str, note: str = "") -> None:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        transcript.append(f"## {note}\n$ iotc {' '.join(args)}\n[exit {code}]\n"
                          f"{captured.out}{captured.err}")

    run("validate", "fleet", note="the examples validate")
    run("--emulator", "plan", "fleet", note="a first plan against the bundled emulator")
    run("--emulator", "apply", "fleet", "--auto-approve", note="apply it")
    run("--emulator", "plan", "fleet", note="nothing left to do")

    project = tmp_path / "fleet" / "project.yaml"
    _edit(project, '["lt-*", "th-lab-*", "gw-*"]', '["lt-*", "gw-*"]')
    devices = tmp_path / "fleet" / "devices.yaml"
    text = devices.read_text()
    start = text.index("---\napiVersion: iotc/v1\nkind: Device\nmetadata:\n  name: th-lab-05")
    end = text.index("---", start + 3)
    devices.write_text(text[:start] + text[end:])
    run("--emulator", "plan", "fleet", "--detailed-exitcode",
        note="a device removed from the manifests, no prune glob covers it: shown with ?")
    run("--emulator", "plan", "fleet", "--target", "device/th-lab-5",
        note="a mistyped target")

    templates = tmp_path / "fleet" / "templates.yaml"
    _edit(templates, "  attributes:\n    - name: temperature", "  atributes:\n    - name: "
                                                              "temperature")
    run("validate", "fleet", note="a template with a misspelt field: one error, not five")
    _edit(templates, "  atributes:\n", "  attributes:\n")
    _edit(devices, "displayName: Lab sensor 1\n", "displayName: Lab sensor one\n")
    run("--emulator", "plan", "fleet", "--out", "plan.json", note="save a plan for review")
    run("--emulator", "apply", "plan.json", note="apply exactly the reviewed plan")
    run("--emulator", "destroy", "fleet", "--auto-approve",
        note="tear it down: the undeclared device keeps its template")
    devices.write_text((EXAMPLES / "devices.yaml").read_text())
    run("--emulator", "destroy", "fleet", "--auto-approve",
        note="declared again, as the error says: everything goes")

    monkeypatch.setenv("IOTC_DISCOVERY_URL", "http://127.0.0.1:9/api/uisdk")
    monkeypatch.setenv("IOTC_USER", "me@example.com")
    monkeypatch.setenv("IOTC_PASS", "secret")
    monkeypatch.setenv("IOTC_SKEY", "my-solution-key")
    run("plan", "fleet", note="forgot to start the emulator")
    run("--emulator=fleet", "plan", "fleet", note="--emulator pointed at a folder")
    (tmp_path / "fleet" / "broken.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Device\nmetadata:\n\tname: x\n")
    run("validate", "fleet", note="a tab in the indentation")

    text = steady(re.sub(r"\(\d+\.\d s\)", "(<time>)", "\n".join(transcript)))
    actual = GUID.sub("<GUID>", text)
    actual = actual.replace(str(tmp_path), "<work>")
    if UPDATE:
        GOLDEN.write_text(actual)
    assert actual == GOLDEN.read_text()
