"""The action's GitHub side against a fake GitHub API (tests/fake_github.py) and the emulator:
the sticky comment (per name, per author, errors on failure), the reviewed plan applied at
merge, a stale plan refused and reported, sealed keys pushed or kept and restored, the
fleets a sweep may remove (issue 26)."""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from iotc_apply import github
from iotc_apply.emulator import EmulatorServer

from .fake_github import State, serve
from .support import env_for, live

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
HEAD, MERGE = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4", "f" * 40
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None,
                                reason="the action's steps are bash and git")


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch) -> Iterator[State]:
    with serve() as (url, state):
        monkeypatch.setenv("GITHUB_API_URL", url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/fleet")
        monkeypatch.setenv("GITHUB_TOKEN", "bot-token")
        yield state


def _step(name: str) -> str:
    return next(s["run"] for s in ACTION["runs"]["steps"] if s.get("name") == name or
                s.get("id") == name)


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env, "PATH": path})


def _action(tmp_path: Path, server: EmulatorServer, **inputs: str) -> tuple[int, dict[str, str]]:
    code, outputs, _ = _action_run(tmp_path, server, **inputs)
    return code, outputs


def _action_run(tmp_path: Path, server: EmulatorServer,
                **inputs: str) -> tuple[int, dict[str, str], str]:
    """The action's command step as the runner runs it."""
    output = tmp_path / "github_output"
    output.write_text("")
    env = {**env_for(server, tmp_path / "config"), "RUNNER_TEMP": str(tmp_path),
           "GITHUB_OUTPUT": str(output), "COMMAND": inputs.get("command", "plan"),
           "MANIFESTS": "m", "NAME": inputs.get("name", "default"),
           "VARS": "run=pr7\ncount=2", "ARGS": inputs.get("args", "--keys-dir keys"),
           "AUTHOR": "",
           "GITHUB_SHA": inputs.get("sha", HEAD), "GITHUB_RUN_ID": inputs.get("run", "")}
    done = _bash(_step("run"), tmp_path, env)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done.returncode, outputs, done.stdout + done.stderr


def _comment_step(tmp_path: Path, code: str, name: str = "default",
                  command: str = "plan") -> subprocess.CompletedProcess[str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    return _bash(_step("post the result on the pull request"), tmp_path, {
        "RUNNER_TEMP": str(tmp_path), "NAME": name, "COMMAND": command, "CODE": code,
        "SHA": HEAD, "AUTHOR": "", "GITHUB_EVENT_PATH": str(event)})


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "test-fleet", tmp_path / "m")
    return tmp_path


def test_a_failed_plan_posts_its_errors_then_a_fixed_one_replaces_them(
        fleet: Path, server: EmulatorServer, gh: State) -> None:
    manifest = next((fleet / "m").glob("*.yaml"))
    good = manifest.read_text()
    manifest.write_text(good.replace("kind: Template", "kind: Templat", 1))
    code, out = _action(fleet, server)
    assert (code, out["exitcode"], out["has-changes"]) == (1, "1", "false")
    assert _comment_step(fleet, out["exitcode"]).returncode == 0
    (posted,) = gh.on(7)
    body = posted["body"]
    assert body.startswith("<!-- iotc-apply: default -->\n**iotc plan** (default) at "
                           f"`{HEAD[:7]}`, ")
    assert "UTC: exit 1, failed\n\n```" in body and "kind" in body
    assert "changes" not in body.split("\n", 2)[1]
    assert posted["user"]["login"] == "github-actions[bot]"
    manifest.write_text(good)
    code, out = _action(fleet, server)
    assert (code, out["exitcode"]) == (0, "2")
    assert _comment_step(fleet, out["exitcode"]).returncode == 0
    (again,) = gh.on(7)  # the same comment, updated
    assert again["id"] == posted["id"] and "exit 2, changes present\n\n### iotc plan" in \
        again["body"] and "Saved the plan" not in again["body"]
    # a plan with plan errors (exit 1) shows them: they are in the markdown plan
    manifest.write_text(good.replace("template: ${var.run}t", "template: ${var.run}t\n"
                                     "  entity: Nowhere", 1))
    code, out = _action(fleet, server)
    assert (code, out["exitcode"]) == (1, "1")
    assert _comment_step(fleet, out["exitcode"]).returncode == 0
    (third,) = gh.on(7)
    assert "exit 1, failed" in third["body"] and "Plan errors" in third["body"] and \
        "Nowhere" in third["body"]


def test_a_failed_validate_comments_its_findings(fleet: Path, server: EmulatorServer,
                                                 gh: State) -> None:
    manifest = next((fleet / "m").glob("*.yaml"))
    manifest.write_text(manifest.read_text().replace("authType: self-signed",
                                                     "authType: selfsigned", 1))
    code, out = _action(fleet, server, command="validate", args="")
    assert (code, out["exitcode"]) == (1, "1")
    assert _comment_step(fleet, "1", command="validate").returncode == 0
    (posted,) = gh.on(7)
    assert "**iotc validate** (default)" in posted["body"] and "selfsigned" in posted["body"]


def test_two_names_keep_two_comments_and_a_planted_one_is_never_edited(
        tmp_path: Path, gh: State) -> None:
    planted = gh.comment(7, "<!-- iotc-apply: staging -->\nplan: all good, merge it", "mallory")
    text = tmp_path / "plan.md"
    text.write_text("### iotc plan: 1 to create\n")
    for name in ("staging", "production", "staging"):
        assert github.main(["comment", "--name", name, "--command", "plan", "--exit", "2",
                            "--text", str(text), "--sha", HEAD, "--pr", "7"]) == 0
    ours = [c for c in gh.on(7) if c["user"]["login"] == "github-actions[bot]"]
    assert sorted(c["body"].split("\n")[0] for c in ours) == [
        "<!-- iotc-apply: production -->", "<!-- iotc-apply: staging -->"]
    assert gh.comments[planted["id"]]["body"].endswith("merge it")  # untouched
    # a personal token's comments are its own login's
    os.environ["GITHUB_TOKEN"] = "alice-token"
    assert github.main(["comment", "--name", "staging", "--command", "plan", "--exit", "0",
                        "--text", str(text), "--sha", HEAD, "--pr", "7"]) == 0
    assert [c["user"]["login"] for c in gh.on(7)].count("alice") == 1


def test_long_errors_are_folded_and_capped() -> None:
    body = github.comment_body("prod", "validate", 1, HEAD, "",
                               "\n".join(f"m.yaml:{i}:1: error: bad" for i in range(500)))
    assert body.count("error: bad") == github.MAX_LINES
    assert "... and 440 more line(s) in the job log" in body
    huge = github.comment_body("prod", "plan", 2, HEAD, "x" * 100_000)
    assert len(huge) < 65_536 and huge.rstrip().endswith("has it all)_")


def _pull(gh: State, state: str) -> None:
    gh.pulls[7] = {"number": 7, "state": state, "head": {"sha": HEAD},
                   "merged_at": "2026-12-06T07:00:00Z" if state == "closed" else None}
    gh.commit_pulls[MERGE] = [7]


def test_the_plan_reviewed_on_the_pull_request_is_applied_at_merge(
        fleet: Path, server: EmulatorServer, gh: State) -> None:
    code, out = _action(fleet, server)
    assert code == 0 and out["has-changes"] == "true"
    plan = Path(out["plan-file"]).read_bytes()
    _pull(gh, "closed")
    gh.run(HEAD, "2026-12-06T06:00:00Z", {"iotc-plan-default": _zip({"other.json": b"{}"}),
                                          "iotc-plan-staging": _zip({"p.json": b"{}"})})
    gh.run(HEAD, "2026-12-06T06:30:00Z", {"iotc-plan-default": _zip({"iotc-plan.json": plan})})
    code, out = _action(fleet, server, command="apply-reviewed", sha=MERGE)
    assert (code, out["exitcode"]) == (0, "0")
    assert {d["uniqueId"] for d in live(server)["device"]} >= {"pr7-lt-001", "pr7-lt-002"}
    assert not gh.issues and not gh.on(7)


@pytest.mark.parametrize("pr_state", ["closed", "open"])
def test_a_stale_reviewed_plan_applies_nothing_and_the_fresh_plan_is_posted(
        fleet: Path, server: EmulatorServer, gh: State, pr_state: str) -> None:
    code, out = _action(fleet, server)
    plan = Path(out["plan-file"]).read_bytes()
    _pull(gh, pr_state)
    gh.run(HEAD, "2026-12-06T06:30:00Z", {"iotc-plan-default": _zip({"iotc-plan.json": plan})})
    (fleet / "m" / "more.yaml").write_text("")  # the manifests moved on after the review
    manifest = next((fleet / "m").glob("*fleet*.yaml"), None) or \
        next(p for p in (fleet / "m").glob("*.yaml") if "DeviceSet" in p.read_text())
    manifest.write_text(manifest.read_text() + "\n")
    before = live(server).get("device", [])
    code, out = _action(fleet, server, command="apply-reviewed", sha=MERGE)
    assert (code, out["exitcode"]) == (1, "1")
    assert live(server).get("device", []) == before  # nothing applied
    if pr_state == "open":
        (posted,) = gh.on(7)
        assert "### iotc plan" in posted["body"]
    else:
        (issue,) = gh.issues.values()
        assert issue["title"] == "iotc: the reviewed plan of #7 (default) was not applied"
        assert issue["body"].startswith("<!-- iotc-apply: default -->") and \
            "### iotc plan" in issue["body"]


def test_a_push_of_a_commit_no_pull_request_reviewed_applies_nothing(
        fleet: Path, server: EmulatorServer, gh: State) -> None:
    code, out = _action(fleet, server, command="apply-reviewed", sha=MERGE)
    assert code == 1 and "device" not in live(server)


def _repos(tmp_path: Path, reject: bool) -> Path:
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True,
                   capture_output=True)
    who = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    (work / "README").write_text("x\n")
    subprocess.run(["git", *who, "-C", str(work), "add", "README"], check=True)
    subprocess.run(["git", *who, "-C", str(work), "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], check=True)
    if reject:  # a protected branch: every push refused
        hook = remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
        hook.chmod(0o755)
    folder = work / "keys" / "ACME-poc" / "d-1"
    folder.mkdir(parents=True)
    (folder / "key.pem.age").write_bytes(b"age-encryption.org/v1\n...")
    (folder / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return work


def test_sealed_keys_are_pushed_or_kept_when_the_push_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    work = _repos(tmp_path / "ok", reject=False)
    assert github.push_keys(work, "keys", "main", sleep=lambda s: None)
    log = subprocess.run(["git", "-C", str(tmp_path / "ok" / "remote.git"), "log", "--oneline",
                          "main"], capture_output=True, text=True).stdout
    assert "sealed keys of new devices" in log
    refused = _repos(tmp_path / "no", reject=True)
    monkeypatch.chdir(refused)
    output = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert github.main(["push-keys", "--branch", "main", "--attempts", "2"]) == 1
    assert output.read_text() == "pushed=false\n"
    assert "kept in this run's artifact 'iotc-keys-default'" in capsys.readouterr().err
    # the action's workflow keeps them: the upload step runs exactly then
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "iotc.yml").read_text())
    steps = workflow["jobs"]["apply"]["steps"]
    keep = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert keep["if"] == "failure() && steps.keys.outputs.pushed == 'false'"
    assert keep["with"]["name"] == "iotc-keys-production"
    (refused / "keys" / "ACME-poc" / "d-1" / "key.pem").write_text("PLAIN")
    assert github.main(["push-keys", "--branch", "main"]) == 1
    assert "a plain private key is in the key store" in capsys.readouterr().err


def test_a_re_run_restores_the_kept_keys_and_nothing_else(tmp_path: Path, gh: State) -> None:
    run = gh.run(HEAD, "2026-12-06T06:30:00Z", {}, event="push")
    gh.artifact(run, "iotc-keys-default", _zip({
        "ACME-poc/d-1/key.pem.age": b"sealed", "ACME-poc/d-1/cert.pem": b"cert",
        "ACME-poc/d-2/key.pem": b"PLAIN", "ACME-poc/d-1/notes.txt": b"x",
        "../outside/key.pem.age": b"evil"}))
    keys = tmp_path / "keys"
    (keys / "ACME-poc" / "d-1").mkdir(parents=True)
    (keys / "ACME-poc" / "d-1" / "cert.pem").write_text("kept")
    with pytest.raises(github.GitHubError, match="leads out of the key store; nothing "
                                                 "restored"):
        github.restore_keys(github.GitHub.from_env(), str(run), "default", keys)
    assert not (keys / "ACME-poc" / "d-1" / "key.pem.age").exists()  # all or nothing
    gh.artifacts = {k: a for k, a in gh.artifacts.items() if a["name"] != "iotc-keys-default"}
    gh.artifact(run, "iotc-keys-default", _zip({
        "ACME-poc/d-1/key.pem.age": b"sealed", "ACME-poc/d-1/cert.pem": b"cert",
        "ACME-poc/d-2/key.pem": b"PLAIN", "ACME-poc/d-1/notes.txt": b"x",
        "ACME-poc/d-3/key.pem.age": b"new"}))
    assert github.restore_keys(github.GitHub.from_env(), str(run), "default", keys) == 2
    assert (keys / "ACME-poc" / "d-1" / "key.pem.age").read_bytes() == b"sealed"
    assert (keys / "ACME-poc" / "d-3").stat().st_mode & 0o777 == 0o700
    assert (keys / "ACME-poc" / "d-1" / "cert.pem").read_text() == "kept"  # never overwritten
    assert not (keys / "ACME-poc" / "d-2").exists() and not (tmp_path / "outside").exists()
    assert "token sent to storage" not in str(gh.calls)


def test_only_fleets_of_pull_requests_closed_past_the_ttl_are_swept(gh: State) -> None:
    now = datetime.datetime(2026, 12, 6, 12, tzinfo=datetime.UTC)

    def pull(number: int, state: str, hours_ago: float, *labels: str) -> None:
        closed = (now - datetime.timedelta(hours=hours_ago)).isoformat()
        gh.pulls[number] = {"number": number, "state": state,
                            "closed_at": closed if state == "closed" else None,
                            "labels": [{"name": n} for n in labels]}

    pull(10042, "closed", 48)
    pull(7, "closed", 30)
    pull(8, "closed", 2)  # closed too recently
    pull(9, "closed", 72, "keep")
    pull(11, "open", 0)  # its jobs may be running
    assert github.sweepable(github.GitHub.from_env(), datetime.timedelta(hours=24),
                            now=now) == [7, 10042]


def test_a_flaky_gateway_is_retried_for_reads_and_edits_but_a_post_is_sent_once(
        tmp_path: Path, gh: State, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github.GitHub, "sleep", staticmethod(lambda s: None))
    text = tmp_path / "plan.md"
    text.write_text("### iotc plan: 1 to create\n")
    args = ["comment", "--command", "plan", "--exit", "2", "--text", str(text), "--sha", HEAD,
            "--pr", "7"]
    gh.flaky["GET /repos/acme/fleet/issues/7/comments"] = 2
    assert github.main(args) == 0 and len(gh.on(7)) == 1  # two 502s, then served
    gh.flaky[f"PATCH /repos/acme/fleet/issues/comments/{gh.on(7)[0]['id']}"] = 1
    assert github.main(args) == 0 and len(gh.on(7)) == 1  # the edit, tried again
    gh.flaky["GET /repos/acme/fleet/issues/7/comments"] = 3  # past the tries: one line
    assert github.main(args) == 1
    gh.flaky = {"POST /repos/acme/fleet/issues/7/comments": 1}
    assert github.main([*args[:1], "--name", "other", *args[1:]]) == 1
    assert [c["body"].split("\n")[0] for c in gh.on(7)] == ["<!-- iotc-apply: default -->"]
    assert gh.calls.count("POST /repos/acme/fleet/issues/7/comments") == 2  # one each run


def test_apply_reviewed_restores_kept_keys_first_and_stops_when_it_cannot(
        fleet: Path, server: EmulatorServer, gh: State) -> None:
    code, out = _action(fleet, server)
    plan = Path(out["plan-file"]).read_bytes()
    _pull(gh, "closed")
    gh.run(HEAD, "2026-12-06T06:30:00Z", {"iotc-plan-default": _zip({"iotc-plan.json": plan})})
    run = gh.run(MERGE, "2026-12-06T07:00:00Z", {}, event="push")
    gh.artifact(run, "iotc-keys-default", _zip({"../../escape/key.pem.age": b"x"}))
    code, out = _action(fleet, server, command="apply-reviewed", sha=MERGE, run=str(run))
    assert (code, out["exitcode"]) == (1, "1") and "device" not in live(server)
    gh.artifacts = {k: a for k, a in gh.artifacts.items() if a["run"] != run}
    gh.artifact(run, "iotc-keys-default", _zip({"ACME-poc/pr7-old/key.pem.age": b"sealed"}))
    code, out, log = _action_run(fleet, server, command="apply-reviewed", sha=MERGE,
                                 run=str(run))
    assert code == 0, log[-1500:]
    assert (fleet / "keys" / "ACME-poc" / "pr7-old" / "key.pem.age").is_file()
    assert {d["uniqueId"] for d in live(server)["device"]} >= {"pr7-lt-001"}
