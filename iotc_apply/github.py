"""The action's GitHub side: the sticky plan comment, the reviewed plan found again at
merge, stale plans reported, sealed keys pushed (or kept) and restored, fleets to sweep.

Run by the composite action as `python -m iotc_apply.github VERB ...` with the job's
GITHUB_* environment and a token (GITHUB_TOKEN, `github-token` input). Everything it reads
back from GitHub is untrusted in the same way as the account: comments are matched by a
marker AND by their author (a pull request's author could plant the marker), artifact
archives are read member by member inside their folder, and the token goes to the API host
only (a redirect to artifact storage carries no Authorization header).
May import: `safefile`, `ui`.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .safefile import OutsideRoot, inside, write_private
from .ui.inert import fence, inert, markdown_text

BOT = "github-actions[bot]"  # who GITHUB_TOKEN comments as
MAX_LINES = 60  # error lines shown in a comment; the job log has them all
MAX_BODY = 60_000  # GitHub holds 65,536 characters a comment
MAX_ARCHIVE = 50 * 1024 * 1024  # a plan or key artifact is small; anything larger is not ours
KEY_FILES = frozenset({"key.pem.age", "cert.pem", "iotcDeviceConfig.json", "attestation"})
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TRIES = 3  # tries of a GET or PATCH that met a dropped connection or a gateway error


class GitHubError(Exception):
    """A GitHub step that cannot go on; the message says why, in one line."""


# -- the API ---------------------------------------------------------------------------------


@dataclass
class GitHub:
    """The REST API of one repository, with the job's token."""

    api: str
    repo: str
    token: str
    sleep = staticmethod(time.sleep)  # between tries (tests stub it)

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str] = os.environ) -> GitHub:
        api = environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        parts = urllib.parse.urlsplit(api)
        if parts.scheme != "https" and not (parts.scheme == "http" and
                                            parts.hostname in LOOPBACK):
            raise GitHubError(f"GITHUB_API_URL {api!r}: https only (http only to this machine)")
        token = environ.get("GITHUB_TOKEN") or ""
        repo = environ.get("GITHUB_REPOSITORY") or ""
        if not token or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise GitHubError("GITHUB_TOKEN and GITHUB_REPOSITORY are needed (pass the "
                              "action's github-token input)")
        return cls(api, repo, token)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One API call. Reads and edits (GET, PATCH: repeating them changes nothing more)
        are tried up to TRIES times on a dropped connection or a 502/503/504, a second
        apart and more; a POST is sent once (a lost answer may have made the comment)."""
        url = f"{self.api}{path}" if path.startswith("/") else path
        tries = TRIES if method in ("GET", "PATCH") else 1
        for attempt in range(tries):
            try:
                resp = requests.request(
                    method, url, json=body, params=params or None, timeout=30,
                    headers={"Authorization": f"Bearer {self.token}",
                             "Accept": "application/vnd.github+json",
                             "X-GitHub-Api-Version": "2022-11-28"})
            except (requests.ConnectionError, requests.Timeout):
                if attempt + 1 == tries:
                    raise
            else:
                if resp.status_code not in (502, 503, 504) or attempt + 1 == tries:
                    break
            self.sleep(1.0 + attempt)
        if resp.status_code >= 400:
            raise GitHubError(f"{method} {path}: HTTP {resp.status_code} "
                              f"{inert(resp.text[:200], one_line=True)}")
        return resp.json() if resp.content else None

    def pages(self, path: str, key: str | None = None, **params: Any) -> Iterator[Any]:
        """Every item of a listing, 100 a page, to its end (at most 50 pages)."""
        for page in range(1, 51):
            got = self.call("GET", path, per_page=100, page=page, **params)
            items = got.get(key, []) if key else got
            yield from items
            if len(items) < 100:
                return

    def login(self, fallback: str = BOT) -> str:
        """Who the token is: a personal token says (`GET /user`); GITHUB_TOKEN cannot, and
        comments as github-actions[bot]."""
        try:
            return str(self.call("GET", "/user")["login"])
        except (GitHubError, KeyError, TypeError):
            return fallback

    def download(self, url: str) -> bytes:
        """An artifact archive: the API answers with a redirect to storage, which is
        followed without the token (requests drops Authorization on another host)."""
        resp = requests.get(url, timeout=60, stream=True, allow_redirects=True,
                            headers={"Authorization": f"Bearer {self.token}",
                                     "Accept": "application/vnd.github+json"})
        if resp.status_code != 200:
            raise GitHubError(f"artifact download: HTTP {resp.status_code}")
        data = bytearray()
        for chunk in resp.iter_content(65536):
            data += chunk
            if len(data) > MAX_ARCHIVE:
                raise GitHubError(f"artifact larger than {MAX_ARCHIVE // 2**20} MB; refused")
        return bytes(data)


# -- the sticky comment ----------------------------------------------------------------------


def marker(name: str) -> str:
    return f"<!-- iotc-apply: {name or 'default'} -->"


def verdict(command: str, code: int) -> str:
    if code == 0:
        return "no changes" if command == "plan" else "ok"
    if code == 2 and command == "plan":
        return "changes present"
    return "failed"


def comment_body(name: str, command: str, code: int, sha: str, text: str,
                 errors: str = "", now: datetime.datetime | None = None) -> str:
    """The comment: marker, one line saying what ran on which commit when and how it
    ended, the error lines when it failed (a code block, folded to MAX_LINES), then the
    plan (markdown; a plan with errors lists them too), capped to fit a comment."""
    now = now or datetime.datetime.now(datetime.UTC)
    label = f" ({markdown_text(name)})" if name else ""
    head = (f"**iotc {command}**{label} at `{sha[:7]}`, {now:%Y-%m-%d %H:%M} UTC: exit "
            f"{code}, {verdict(command, code)}")
    parts = []
    if verdict(command, code) == "failed":
        lines = [line for line in errors.splitlines() if line.strip()]
        shown = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            shown.append(f"... and {len(lines) - MAX_LINES} more line(s) in the job log")
        if shown or not text.strip():
            parts.append(fence(shown or ["(no output; see the job log)"]))
    if text.strip():
        parts.append(text.strip())
    body = f"{marker(name)}\n{head}\n\n" + "\n\n".join(parts) + "\n"
    if len(body) > MAX_BODY:
        body = body[:MAX_BODY] + "\n\n_(cut to fit a comment; the job log has it all)_\n"
    return body


def post_comment(gh: GitHub, number: int, name: str, body: str, author: str) -> str:
    """Create the comment, or update the one this author left with this name's marker
    (a comment by anyone else, marker or not, is never edited). Returns what was done."""
    mine = next((c for c in gh.pages(f"/repos/{gh.repo}/issues/{number}/comments")
                 if str(c.get("body") or "").startswith(marker(name)) and
                 (c.get("user") or {}).get("login") == author), None)
    if mine is not None:
        gh.call("PATCH", f"/repos/{gh.repo}/issues/comments/{mine['id']}", {"body": body})
        return f"updated comment {mine['id']}"
    made = gh.call("POST", f"/repos/{gh.repo}/issues/{number}/comments", {"body": body})
    return f"created comment {made['id']}"


# -- the reviewed plan, at merge ---------------------------------------------------------------


def merged_pull(gh: GitHub, commit: str) -> dict[str, Any]:
    """The pull request a pushed commit came from (merge, squash or rebase)."""
    pulls = gh.call("GET", f"/repos/{gh.repo}/commits/{commit}/pulls") or []
    merged = [p for p in pulls if p.get("merged_at")] or pulls
    if not merged:
        raise GitHubError(f"commit {commit[:7]} belongs to no pull request: nothing was "
                          "reviewed, so nothing is applied (push manifests through a pull "
                          "request)")
    return dict(merged[0])


def fetch_plan(gh: GitHub, head: str, name: str, out: Path) -> int:
    """The plan file of the newest pull-request run for the commit `head` that kept one
    named `iotc-plan-NAME`, written to `out`; returns that run's id."""
    artifact = f"iotc-plan-{name or 'default'}"
    runs = gh.call("GET", f"/repos/{gh.repo}/actions/runs", head_sha=head,
                   event="pull_request", per_page=100).get("workflow_runs", [])
    for run in sorted(runs, key=lambda r: str(r.get("created_at")), reverse=True):
        found = gh.call("GET", f"/repos/{gh.repo}/actions/runs/{run['id']}/artifacts",
                        name=artifact).get("artifacts", [])
        usable = [a for a in found if a.get("name") == artifact and not a.get("expired")]
        if usable:
            archive = gh.download(usable[0]["archive_download_url"])
            write_private(out, _member(archive, lambda n: n.endswith(".json")), mode=0o644)
            return int(run["id"])
    raise GitHubError(f"no plan '{artifact}' from a pull-request run of {head[:7]}: was the "
                      "last push of the pull request planned, and its artifact kept?")


def _member(archive: bytes, wanted: Callable[[str], bool]) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            names = [n for n in z.namelist() if "/" not in n and wanted(n)]
            if len(names) != 1:
                raise GitHubError("the plan artifact must hold exactly one plan file")
            info = z.getinfo(names[0])
            if info.file_size > MAX_ARCHIVE:
                raise GitHubError("plan file too large")
            return z.read(info)
    except zipfile.BadZipFile:
        raise GitHubError("the artifact is not a zip archive") from None


def report_stale(gh: GitHub, pull: dict[str, Any], name: str, body: str, author: str) -> str:
    """The fresh plan where someone will read it: on the pull request while it is open,
    else in the one open issue for this name (made, or updated)."""
    number = int(pull["number"])
    if pull.get("state") == "open":
        return post_comment(gh, number, name, body, author)
    title = f"iotc: the reviewed plan of #{number} ({name or 'default'}) was not applied"
    label = "iotc-apply"
    issues = [i for i in gh.pages(f"/repos/{gh.repo}/issues", state="open", labels=label)
              if "pull_request" not in i and str(i.get("body") or "").startswith(marker(name))
              and (i.get("user") or {}).get("login") == author]
    text = (f"{body}\n\nThe plan reviewed on #{number} no longer matches the account or the "
            "manifests, so nothing was applied. Review the fresh plan above, then re-run the "
            "workflow or push a change through a new pull request.\n")
    if issues:
        gh.call("PATCH", f"/repos/{gh.repo}/issues/{issues[0]['number']}",
                {"title": title, "body": text})
        return f"updated issue {issues[0]['number']}"
    made = gh.call("POST", f"/repos/{gh.repo}/issues", {"title": title, "body": text,
                                                         "labels": [label]})
    return f"opened issue {made['number']}"


# -- sealed keys -----------------------------------------------------------------------------


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def push_keys(repo: Path, keys: str, branch: str, attempts: int = 3,
              sleep: Callable[[float], None] = time.sleep) -> bool:
    """Commit the key store's new sealed files and push them: fetch and rebase before each
    try, at most `attempts`. A plain key is refused before anything is committed. False
    when the push never went through (the caller keeps the files as an artifact)."""
    plain = sorted(str(p.relative_to(repo)) for p in (repo / keys).rglob("key.pem"))
    if plain:
        raise GitHubError(f"a plain private key is in the key store ({plain[0]}); refusing "
                          "to commit it (set the recipients, so keys are sealed)")
    git("add", "--", keys, cwd=repo)
    if git("diff", "--cached", "--quiet", cwd=repo).returncode == 0:
        return True  # nothing new to keep
    who = ["-c", "user.name=iotc-apply", "-c", "user.email=iotc-apply@users.noreply.github.com"]
    made = git(*who, "commit", "-m", "iotc: sealed keys of new devices", cwd=repo)
    if made.returncode != 0:
        raise GitHubError(f"git commit failed: {made.stderr.strip()[:200]}")
    for attempt in range(attempts):
        if git("push", "origin", f"HEAD:{branch}", cwd=repo).returncode == 0:
            return True
        if attempt + 1 < attempts:
            sleep(2.0 * (attempt + 1))
            git(*who, "pull", "--rebase", "origin", branch, cwd=repo)
    return False


def restore_keys(gh: GitHub, run_id: str, name: str, keys: Path) -> int:
    """Sealed files an earlier attempt of this run kept as an artifact (its push failed),
    put back into the key store so apply finds the keys of devices it registered. Only key
    store file names, inside `keys`, never over an existing file. Returns files restored."""
    artifact = f"iotc-keys-{name or 'default'}"
    found = [a for a in gh.call("GET", f"/repos/{gh.repo}/actions/runs/{run_id}/artifacts",
                                name=artifact).get("artifacts", [])
             if a.get("name") == artifact and not a.get("expired")]
    if not found:
        return 0
    archive = gh.download(found[0]["archive_download_url"])
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        members = [info for info in z.infolist() if not info.is_dir() and
                   info.filename.split("/")[-1] in KEY_FILES]
        for info in members:  # every name checked before anything is written
            parts = info.filename.split("/")
            if info.filename.startswith("/") or "\\" in info.filename or \
                    any(p in ("", ".", "..") for p in parts):
                raise GitHubError(f"artifact member {info.filename!r} leads out of the key "
                                  "store; nothing restored")
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        restored = 0
        for info in members:
            try:
                target = inside(keys, info.filename)
            except OutsideRoot:
                raise GitHubError(f"artifact member {info.filename!r} passes through a "
                                  "symlink in the key store; nothing more restored") from None
            if target.exists() or info.file_size > 1024 * 1024:
                continue
            for folder in target.relative_to(keys).parents:  # key folders are private
                if folder != Path("."):
                    os.chmod(keys / folder, 0o700)
            write_private(target, z.read(info), mode=0o600 if target.name.endswith(".age")
                          else 0o644)
            restored += 1
    return restored


# -- test fleets -----------------------------------------------------------------------------


def sweepable(gh: GitHub, ttl: datetime.timedelta, keep: str = "keep",
              now: datetime.datetime | None = None) -> list[int]:
    """Pull requests whose test fleet may go: closed longer than `ttl` ago and not labelled
    `keep`. An open pull request's fleet is never swept (its jobs may be running)."""
    now = now or datetime.datetime.now(datetime.UTC)
    out = []
    for pull in gh.pages(f"/repos/{gh.repo}/pulls", state="closed", sort="updated",
                         direction="desc"):
        closed = pull.get("closed_at")
        if not closed:
            continue
        when = datetime.datetime.fromisoformat(str(closed).replace("Z", "+00:00"))
        labels = {str(label.get("name")) for label in pull.get("labels") or ()}
        if now - when > ttl and keep not in labels:
            out.append(int(pull["number"]))
    return sorted(out)


# -- the command line ------------------------------------------------------------------------


def _output(**values: object) -> None:
    """Step outputs (GITHUB_OUTPUT), when running in a job."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.writelines(f"{k.replace('_', '-')}={v}\n" for k, v in values.items())


def _read(path: Path | None) -> str:
    """A file the command step wrote; absent or unreadable reads as nothing."""
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        return ""


def _pull_number(given: int | None) -> int:
    if given:
        return given
    event = os.environ.get("GITHUB_EVENT_PATH")
    try:
        data = json.loads(Path(event).read_text()) if event else {}
        return int(data["pull_request"]["number"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GitHubError("no pull request number (pass --pr, or run on pull_request)") \
            from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m iotc_apply.github")
    verbs = parser.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("comment", help="post or update the sticky comment")
    c.add_argument("--name", default="")
    c.add_argument("--command", required=True)
    c.add_argument("--exit", type=int, required=True, dest="code")
    c.add_argument("--text", type=Path, help="the plan (markdown)")
    c.add_argument("--errors", type=Path, help="the command's error output")
    c.add_argument("--sha", required=True)
    c.add_argument("--pr", type=int)
    c.add_argument("--author", default="", help="whose comment is ours (default: the "
                   "token's login, github-actions[bot] for GITHUB_TOKEN)")
    f = verbs.add_parser("fetch-plan", help="the reviewed plan of the pushed commit's PR")
    f.add_argument("--name", default="")
    f.add_argument("--commit", required=True)
    f.add_argument("--out", required=True, type=Path)
    f.add_argument("--pr-file", type=Path, help="also write the pull request's number here")
    s = verbs.add_parser("report-stale", help="post the fresh plan where it will be read")
    s.add_argument("--name", default="")
    s.add_argument("--pr", type=int, required=True)
    s.add_argument("--text", required=True, type=Path)
    s.add_argument("--exit", type=int, default=2, dest="code")
    s.add_argument("--sha", required=True)
    s.add_argument("--author", default="")
    p = verbs.add_parser("push-keys", help="commit and push new sealed keys")
    p.add_argument("--keys", default="keys")
    p.add_argument("--branch", required=True)
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--name", default="")
    r = verbs.add_parser("restore-keys", help="sealed keys an earlier attempt kept")
    r.add_argument("--keys", default="keys", type=Path)
    r.add_argument("--name", default="")
    r.add_argument("--run", default=os.environ.get("GITHUB_RUN_ID", ""))
    w = verbs.add_parser("sweepable", help="closed PRs whose test fleet may go")
    w.add_argument("--ttl-hours", type=float, default=24.0)
    w.add_argument("--keep-label", default="keep")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except GitHubError as exc:
        print(f"::error::{inert(str(exc), one_line=True)}", file=sys.stderr)
        return 1
    except requests.RequestException as exc:
        print(f"::error::GitHub did not answer: {type(exc).__name__}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the step writes or reads (keys, plan, comment text)
        print(f"::error::{inert(f'{exc.filename}: {exc.strerror}', one_line=True)}",
              file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.verb == "push-keys":
        if push_keys(Path.cwd(), args.keys, args.branch, args.attempts):
            _output(pushed="true")
            return 0
        _output(pushed="false")
        print(f"::error::the new sealed keys could not be pushed to {args.branch}; they are "
              f"kept in this run's artifact 'iotc-keys-{args.name or 'default'}': download "
              f"it and commit its files under {args.keys}/ (re-running this workflow "
              "restores them before it applies)", file=sys.stderr)
        return 1
    gh = GitHub.from_env()
    if args.verb == "comment":
        author = args.author or gh.login()
        body = comment_body(args.name, args.command, args.code, args.sha, _read(args.text),
                            _read(args.errors))
        print(post_comment(gh, _pull_number(args.pr), args.name, body, author))
    elif args.verb == "fetch-plan":
        pull = merged_pull(gh, args.commit)
        run = fetch_plan(gh, str(pull["head"]["sha"]), args.name, args.out)
        _output(pr=pull["number"], pr_state=pull.get("state"), plan_run=run)
        if args.pr_file:
            args.pr_file.write_text(f"{int(pull['number'])}\n")
        print(f"the plan reviewed on #{pull['number']} (run {run}) is in {args.out}")
    elif args.verb == "report-stale":
        author = args.author or gh.login()
        pull = gh.call("GET", f"/repos/{gh.repo}/pulls/{args.pr}")
        body = comment_body(args.name, "plan", args.code, args.sha, _read(args.text))
        print(report_stale(gh, pull, args.name, body, author))
    elif args.verb == "restore-keys":
        count = restore_keys(gh, args.run, args.name, args.keys) if args.run else 0
        print(f"restored {count} sealed key file(s) an earlier attempt kept")
    elif args.verb == "sweepable":
        for number in sweepable(gh, datetime.timedelta(hours=args.ttl_hours),
                                args.keep_label):
            print(number)
    return 0


if __name__ == "__main__":
    sys.exit(main())
