"""Strings from the account and from pull requests are shown, written and matched as data,
never obeyed: terminal escapes, markdown that would close a fence, workflow commands, path
segments, `${`, redirects and oversized downloads (issue 24). Each test fails on the code
before it: the hostile value reached the output, the file system or memory as it was."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer
from iotc_apply.ui.inert import fence, inert, markdown_text, workflow_safe

from .test_e2e import iotc, work  # noqa: F401  (fixture)

HOSTILE = ("Pump \x1b]0;owned\x07\x1b[2J\x9b31m\nNo changes.\n```\n### ok @ops\n![x](h://e) "
           "<img>\n::warning::f")  # under the service's 100 characters


def _no_raw_controls(text: str) -> None:
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text[:300])


@pytest.fixture
def hostile(work: Path, api: IoTConnect, capsys: pytest.CaptureFixture[str]) -> Path:  # noqa: F811
    """The examples applied, then one declared device renamed in the account (an update the
    plan shows) and one undeclared device added (a `?` line), both with HOSTILE names."""
    assert iotc("apply", "m", "--auto-approve") == 0
    device = api.devices.get_by_duid("th-lab-01")
    assert device is not None
    api.devices.update(device.guid, HOSTILE, api.entities.root().guid)
    capsys.readouterr()
    return work


def test_plan_text_shows_hostile_names_escaped(hostile: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m") == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert "\\u001b]0;owned\\u0007\\u001b[2J\\x9b31m\\nNo changes.\\n```" in out
    assert not any(line.startswith(("No changes.", "###", "::")) for line in out.splitlines())


def test_plan_markdown_cannot_be_forged(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m", "--format", "markdown") == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    lines = out.splitlines()
    assert not any(line.startswith(("###", "No changes.", "::", "![", "<img")) for line in
                   lines[1:]), out
    # every fence closes with the same mark it opened with, and only there
    fences = [line for line in lines if line.startswith("```")]
    assert len(fences) % 2 == 0 and all(len(f.rstrip("diff")) >= 4 for f in fences), fences


def test_plan_json_keeps_the_value_escaped(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m", "--format", "json") == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    plan = json.loads(out)
    (change,) = [c for c in plan["changes"] if c["address"] == "device/th-lab-01"]
    assert change["before"]["displayName"] == HOSTILE  # data, exactly as the account has it


@pytest.mark.parametrize("output", ["table", "wide", "json", "yaml"])
def test_get_shows_hostile_names_inert(hostile: Path, output: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.cli import main

    assert main(["get", "devices", "th-lab-01", "-o", output]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    if output == "json":
        assert json.loads(out)[0]["displayName"] == HOSTILE
    elif output == "yaml":
        assert yaml.safe_load(out)[0]["displayName"] == HOSTILE
    else:
        assert len(out.splitlines()) == 2 and "\\x1b]0;owned" in out


def test_the_renderers_escape_what_they_are_given() -> None:
    assert inert("a\x1b[2Jb\tc\nd\x7f\x9b\u202e") == "a\\x1b[2Jb\tc\nd\\x7f\\x9b\\u202e"
    assert inert("a\nb", one_line=True) == "a\\x0ab"
    assert markdown_text("a|b <i> @team `x` [l](u)") == \
        "a\\|b &lt;i&gt; @&#8203;team \\`x\\` \\[l\\](u)"
    assert fence(["x ```` y", "z"], "diff") == "`````diff\nx ```` y\nz\n`````"
    assert workflow_safe("::warning::x") == " ::warning::x" and workflow_safe("ok") == "ok"
