"""Variables: environments and throw-away fleets from one manifest tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.emulator import EmulatorServer
from iotc_apply.manifest import load
from iotc_apply.manifest.variables import Given
from iotc_apply.model import DesiredDevice

from .support import iotc, live

ROOT = Path(__file__).resolve().parent.parent
TEST_FLEET = ROOT / "examples" / "test-fleet"


def test_two_runs_coexist_and_destroy_independently(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    shutil.copytree(TEST_FLEET, work / "tf")
    assert iotc("apply", "tf", "--var", "run=pra", "--auto-approve") == 0
    assert iotc("apply", "tf", "--var", "run=prb", "--var", "count=3", "--auto-approve") == 0
    duids = sorted(d["uniqueId"] for d in live(server)["device"])
    assert duids == [f"pra-lt-00{i}" for i in range(1, 6)] + \
        [f"prb-lt-00{i}" for i in range(1, 4)]
    assert iotc("plan", "tf", "--var", "run=pra", "--detailed-exitcode") == 0
    assert iotc("destroy", "tf", "--var", "run=pra", "--auto-approve") == 0
    state = live(server)
    assert sorted(d["uniqueId"] for d in state["device"]) == [f"prb-lt-00{i}" for i in (1, 2, 3)]
    assert [t["code"] for t in state["template"]] == ["prbt"]


def test_sources_rank_flags_files_environment_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one.yaml").write_text("run: filev\ncount: 2\n")
    (tmp_path / "two.yaml").write_text("count: 4\n")
    monkeypatch.chdir(tmp_path)

    def devices(given: Given) -> list[str]:
        loaded = load([str(TEST_FLEET)], given)
        assert loaded.ok, [str(d) for d in loaded.diagnostics]
        return sorted(d.duid for d in loaded.desired.of(DesiredDevice))

    env = {"IOTC_VAR_run": "envv", "IOTC_VAR_count": "1"}
    assert devices(Given(environ=env)) == ["envv-lt-001"]
    assert devices(Given(files=("one.yaml", "two.yaml"), environ=env)) == \
        [f"filev-lt-00{i}" for i in range(1, 5)]  # files beat env, later files win
    assert devices(Given({"run": "flagv"}, ("one.yaml",), env)) == ["flagv-lt-001", "flagv-lt-002"]


def test_escapes_types_and_index_beside_variables(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Variables\nmetadata: {name: v}\nspec:\n  variables:\n"
        "    site: {type: string, default: north}\n    live: {type: boolean, default: false}\n"
        "---\napiVersion: iotc/v1\nkind: Template\nmetadata: {name: t1}\nspec:\n"
        "  name: 'Costs $${var.site} and ${var.site}'\n  authType: self-signed\n"
        "  attributes: [{name: a, type: DECIMAL}]\n"
        "---\napiVersion: iotc/v1\nkind: DeviceSet\nmetadata: {name: s}\nspec:\n"
        "  count: 2\n  uniqueId: '${var.site}-{index:02}'\n  template: t1\n"
        "  displayName: '{index} at ${var.site}'\n  active: ${var.live}\n")
    loaded = load([str(tmp_path)])
    assert loaded.ok, [str(d) for d in loaded.diagnostics]
    devices = loaded.desired.of(DesiredDevice)
    assert [(d.duid, d.display_name, d.active) for d in devices] == [
        ("north-01", "1 at north", False), ("north-02", "2 at north", False)]
    template = next(iter(r for r in loaded.desired.resources.values()
                         if getattr(r, "code", None) == "t1"))
    assert template.name == "Costs ${var.site} and north"


def test_a_sensitive_value_leaves_no_trace_in_plans(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    (work / "s").mkdir()
    (work / "s" / "m.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Variables\nmetadata: {name: v}\nspec:\n  variables:\n"
        "    owner: {type: string, sensitive: true}\n    run: {type: string}\n"
        "---\napiVersion: iotc/v1\nkind: Template\nmetadata: {name: t1}\nspec:\n"
        "  name: T\n  authType: self-signed\n  attributes: [{name: a, type: DECIMAL}]\n"
        "---\napiVersion: iotc/v1\nkind: Device\nmetadata: {name: '${var.run}-d1'}\nspec:\n"
        "  template: t1\n  displayName: 'Owned by ${var.owner}'\n")
    secret = "Zq9-unguessable-owner"
    monkeypatch.setenv("IOTC_VAR_owner", secret)
    assert iotc("plan", "s", "--var", "run=pr1", "--out", "p.json") == 0
    assert iotc("plan", "s", "--var", "run=pr1", "--format", "json") == 0
    out = capsys.readouterr().out
    saved = Path("p.json").read_text()
    assert secret not in saved and secret not in out
    assert "Owned by (sensitive)" in saved
    source = json.loads(saved)["source"]
    assert source["variables"] == {"owner": "(sensitive)", "run": "pr1"}
    assert iotc("apply", "p.json") == 0  # no --var: run is recorded, owner from the environment
    assert "Apply complete: 2 created" in capsys.readouterr().out
    names = {d["uniqueId"]: d["displayName"] for d in live(server)["device"]}
    assert names == {"pr1-d1": f"Owned by {secret}"}  # the account gets the real value
    assert main(["validate", "s", "--var", "nosuch=1"]) == 1
    assert "'nosuch' is not a declared variable (declared: owner, run)" in \
        capsys.readouterr().err


def test_a_sweep_removes_exactly_the_left_overs(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """A crashed run's fleet is swept by name; a protected device and the other run stay."""
    shutil.copytree(TEST_FLEET, work / "tf")
    assert iotc("apply", "tf", "--var", "run=pra", "--auto-approve") == 0
    assert iotc("apply", "tf", "--var", "run=prb", "--var", "count=2", "--auto-approve") == 0
    (work / "guard").mkdir()
    (work / "guard" / "project.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Project\nmetadata: {name: guard}\n"
        "spec:\n  protect: {devices: [pra-lt-003]}\n")
    capsys.readouterr()
    assert iotc("destroy", "guard", "--match", "device/pra-*", "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "warning: device/pra-lt-003: protected (Project.protect); left in place" in out
    assert "Destroy complete: 4 removed" in out
    assert sorted(d["uniqueId"] for d in live(server)["device"]) == \
        ["pra-lt-003", "prb-lt-001", "prb-lt-002"]


def test_older_than_ages_templates_and_refuses_devices(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    import time

    ctx = server.emulator.state.ctx
    shutil.copytree(TEST_FLEET, work / "tf")
    real = ctx.clock
    try:
        ctx.clock = lambda: real() - 3 * 3600  # made 3 hours ago
        assert iotc("apply", "tf", "--var", "run=old", "--var", "count=1",
                    "--auto-approve") == 0
        ctx.clock = lambda: real() - 3600  # made 1 hour ago
        assert iotc("apply", "tf", "--var", "run=new", "--var", "count=1",
                    "--auto-approve") == 0
    finally:
        ctx.clock = real
    assert time.time() - real() < 5
    capsys.readouterr()
    assert iotc("destroy", "--match", "device/*", "--older-than", "2h") == 1
    assert "IoTConnect reports no creation time for devices" in capsys.readouterr().err
    assert iotc("destroy", "--match", "device/old-*", "--auto-approve") == 0
    assert iotc("destroy", "--match", "template/*", "--older-than", "2h",
                "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "- template/oldt" in out and "newt" not in out
    assert sorted(t["code"] for t in live(server)["template"]) == ["newt"]
    assert iotc("destroy", "--match", "template/*", "--older-than", "2 days") == 1
    assert "expected a number and a unit" in capsys.readouterr().err


def _variables_doc(tmp_path: Path, spec: str) -> Path:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Variables\nmetadata: {name: v}\nspec:\n  variables:\n"
        f"    {spec}\n")
    return tmp_path


@pytest.mark.parametrize(("pattern", "value"), [
    ("(a|a)*b", "a" * 28), ("((a)*)*b", "a" * 5_000), ("a*a*a*a*b", "a" * 5_000),
    (".*.*.*.*=b", "a" * 5_000), ("(a+)+b", "a" * 5_000)])
def test_a_hostile_pattern_cannot_hang_validate(tmp_path: Path, pattern: str,
                                                value: str) -> None:
    """Pattern and value come from one pull request; on Python's `re` each of these took
    24.5 s to past 30 s. RE2 matches in linear time: each is refused in under 50 ms."""
    import time

    root = _variables_doc(tmp_path, f"run: {{type: string, pattern: '{pattern}'}}")
    started = time.perf_counter()
    loaded = load([str(root)], Given(flags={"run": value}))
    elapsed = time.perf_counter() - started
    (message,) = [d.message for d in loaded.diagnostics]
    assert message.startswith("variable 'run': 'aaaa") and \
        message.endswith(f" does not match the pattern {pattern!r}")
    assert elapsed < 0.05 + 0.5  # 50 ms of matching, plus loading the schemas once


def test_patterns_run_under_re2_in_under_50_ms() -> None:
    """The matching itself, timed alone (the figure the issue names)."""
    import time

    from iotc_apply.manifest.variables import _compiled

    for pattern, value in [("(a|a)*b", "a" * 28), ("((a)*)*b", "a" * 5_000),
                           ("a*a*a*a*b", "a" * 5_000), (".*.*.*.*=b", "a" * 5_000)]:
        started = time.perf_counter()
        assert _compiled(pattern).fullmatch(value) is None
        assert time.perf_counter() - started < 0.05, pattern


@pytest.mark.parametrize(("spec", "given"), [
    ("pin: {type: integer, sensitive: true}", "12ab-secret-34"),
    ("flag: {type: boolean, sensitive: true}", "maybe-secret"),
    ("pin: {type: integer, sensitive: true, pattern: '[0-9]{4}'}", "987654")])
def test_a_sensitive_value_is_never_shown_in_its_errors(tmp_path: Path, spec: str,
                                                        given: str) -> None:
    root = _variables_doc(tmp_path, spec)
    name = spec.split(":")[0]
    loaded = load([str(root)], Given(flags={name: given}))
    messages = [str(d) for d in loaded.diagnostics]
    assert len(messages) == 1 and "(sensitive)" in messages[0], messages
    assert given not in messages[0] and "secret" not in messages[0]


@pytest.mark.parametrize("where", ["metadata: {name: 'd-${var.owner}'}\nspec:\n  template: t1",
                                   "metadata: {name: s}\nspec:\n  count: 2\n"
                                   "  uniqueId: '${var.owner}-{index}'\n  template: t1"])
def test_a_sensitive_value_cannot_name_an_object(tmp_path: Path, where: str) -> None:
    """A DUID is an address: in every plan, in the key store's folder names, in the
    certificate. Masking it would make the plan unreadable, so it is refused where written."""
    kind = "DeviceSet" if "uniqueId" in where else "Device"
    root = _variables_doc(tmp_path, "owner: {type: string, sensitive: true}")
    (root / "d.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Template\nmetadata: {name: t1}\nspec:\n  name: T\n"
        "  authType: self-signed\n  attributes: [{name: a, type: DECIMAL}]\n---\n"
        f"apiVersion: iotc/v1\nkind: {kind}\n{where}\n")
    loaded = load([str(root)], Given(flags={"owner": "Zq9-secret"}))
    messages = [str(d) for d in loaded.diagnostics]
    assert len(messages) == 1 and "sensitive variable 'owner' cannot be part of an object's " \
        "name" in messages[0] and "Zq9" not in messages[0], messages
    assert messages[0].startswith(f"{root / 'd.yaml'}:")


def test_variables_declared_in_a_later_file_reach_every_file_and_an_escaped_kind_is_named(
        tmp_path: Path) -> None:
    """Files stream (each is built and dropped), so Variables documents are read first:
    one declared in the last file still serves the first; one whose kind only YAML escapes
    spell cannot be found early, and says so where it is."""
    from iotc_apply.manifest import load

    (tmp_path / "a.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Template\nmetadata:\n  name: ${var.code}\n"
        "spec: {name: T, authType: self-signed, attributes: [{name: t, type: DECIMAL}]}\n")
    (tmp_path / "z.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Variables\nmetadata: {name: v}\n"
        "spec: {variables: {code: {type: string, default: sensor01}}}\n")
    loaded = load([str(tmp_path)])
    assert loaded.ok and [str(a) for a in loaded.desired.resources] == ["template/sensor01"]
    (tmp_path / "z.yaml").write_text((tmp_path / "z.yaml").read_text().replace(
        "kind: Variables", 'kind: "\\x56ariables"'))
    messages = [str(d) for d in load([str(tmp_path)]).diagnostics]
    assert any("z.yaml:2:7: error: write a Variables document's kind plainly" in m
               for m in messages), messages
