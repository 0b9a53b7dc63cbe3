"""A small GitHub REST API on 127.0.0.1 for the action's GitHub side (iotc_apply/github.py).

Only what the action calls, shaped as GitHub documents it (docs.github.com/rest): issue
comments, issues, pull requests and the pulls of a commit, workflow runs by head commit, run
artifacts, whose archive download answers with a redirect to storage (another origin, here
another port) as GitHub's does. Tokens: `bot-token` is GITHUB_TOKEN (github-actions[bot];
`GET /user` is refused to it, as to an installation token), `alice-token` a person's.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, redirect, request
from werkzeug.serving import make_server

TOKENS = {"bot-token": "github-actions[bot]", "alice-token": "alice",
          "mallory-token": "mallory"}


@dataclass
class State:
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> meta + data
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    calls: list[str] = field(default_factory=list)
    # "METHOD /path" -> answers of 502 still to give before serving it (a flaky gateway)
    flaky: dict[str, int] = field(default_factory=dict)

    def comment(self, number: int, body: str, login: str) -> dict[str, Any]:
        made = {"id": next(self.ids), "issue": number, "body": body, "user": {"login": login}}
        self.comments[made["id"]] = made
        return made

    def on(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue"] == number]

    def run(self, head_sha: str, created_at: str, artifacts: dict[str, bytes],
            event: str = "pull_request") -> int:
        run_id = next(self.ids)
        self.runs.append({"id": run_id, "head_sha": head_sha, "event": event,
                          "created_at": created_at, "status": "completed"})
        for name, data in artifacts.items():
            self.artifact(run_id, name, data)
        return run_id

    def artifact(self, run_id: int, name: str, data: bytes) -> None:
        artifact_id = next(self.ids)
        self.artifacts[artifact_id] = {"id": artifact_id, "name": name, "run": run_id,
                                       "expired": False, "data": data}


def _app(state: State, storage: list[str]) -> Flask:
    app = Flask("fake-github")

    def who() -> str | None:
        auth = request.headers.get("Authorization", "")
        return TOKENS.get(auth.removeprefix("Bearer "))

    @app.before_request
    def gate() -> Response | None:
        state.calls.append(f"{request.method} {request.path}")
        if request.path.startswith("/storage/"):
            return None
        if who() is None:
            return Response('{"message": "Bad credentials"}', 401, mimetype="application/json")
        key = f"{request.method} {request.path}"
        if state.flaky.get(key):
            state.flaky[key] -= 1
            return Response("<html>502 Bad Gateway</html>", 502, mimetype="text/html")
        return None

    def page(items: list[Any]) -> list[Any]:
        size = int(request.args.get("per_page", 30))
        number = int(request.args.get("page", 1))
        return items[(number - 1) * size:number * size]

    @app.get("/user")
    def user() -> Response:
        if who() == "github-actions[bot]":
            return Response('{"message": "Resource not accessible by integration"}', 403,
                            mimetype="application/json")
        return jsonify({"login": who()})

    @app.get("/repos/<o>/<r>/issues/<int:number>/comments")
    def comments(o: str, r: str, number: int) -> Response:
        return jsonify(page(state.on(number)))

    @app.post("/repos/<o>/<r>/issues/<int:number>/comments")
    def add_comment(o: str, r: str, number: int) -> tuple[Response, int]:
        return jsonify(state.comment(number, request.json["body"], who() or "")), 201

    @app.patch("/repos/<o>/<r>/issues/comments/<int:cid>")
    def edit_comment(o: str, r: str, cid: int) -> Response:
        found = state.comments[cid]
        if found["user"]["login"] != who():
            return Response('{"message": "Forbidden"}', 403, mimetype="application/json")
        found["body"] = request.json["body"]
        return jsonify(found)

    @app.get("/repos/<o>/<r>/commits/<sha>/pulls")
    def commit_pulls(o: str, r: str, sha: str) -> Response:
        return jsonify([state.pulls[n] for n in state.commit_pulls.get(sha, [])])

    @app.get("/repos/<o>/<r>/pulls/<int:number>")
    def pull(o: str, r: str, number: int) -> Response:
        return jsonify(state.pulls[number])

    @app.get("/repos/<o>/<r>/pulls")
    def pulls(o: str, r: str) -> Response:
        wanted = request.args.get("state", "open")
        found = [p for p in state.pulls.values() if wanted in ("all", p["state"])]
        return jsonify(page(found))

    @app.get("/repos/<o>/<r>/issues")
    def issues(o: str, r: str) -> Response:
        label = request.args.get("labels")
        found = [i for i in state.issues.values() if i["state"] == request.args.get(
            "state", "open") and (not label or label in [x["name"] for x in i["labels"]])]
        return jsonify(page(found))

    @app.post("/repos/<o>/<r>/issues")
    def open_issue(o: str, r: str) -> tuple[Response, int]:
        number = next(state.ids)
        state.issues[number] = {"number": number, "state": "open", "user": {"login": who()},
                                "title": request.json["title"], "body": request.json["body"],
                                "labels": [{"name": n} for n in request.json.get("labels", [])]}
        return jsonify(state.issues[number]), 201

    @app.patch("/repos/<o>/<r>/issues/<int:number>")
    def edit_issue(o: str, r: str, number: int) -> Response:
        state.issues[number].update(request.json)
        return jsonify(state.issues[number])

    @app.get("/repos/<o>/<r>/actions/runs")
    def runs(o: str, r: str) -> Response:
        found = [x for x in state.runs if x["head_sha"] == request.args.get("head_sha") and
                 x["event"] == request.args.get("event", x["event"])]
        return jsonify({"total_count": len(found), "workflow_runs": found})

    @app.get("/repos/<o>/<r>/actions/runs/<int:run_id>/artifacts")
    def run_artifacts(o: str, r: str, run_id: int) -> Response:
        found = [{k: v for k, v in a.items() if k != "data"} |
                 {"archive_download_url":
                  f"{request.host_url}repos/{o}/{r}/actions/artifacts/{a['id']}/zip"}
                 for a in state.artifacts.values() if a["run"] == run_id and
                 a["name"] == request.args.get("name", a["name"])]
        return jsonify({"total_count": len(found), "artifacts": found})

    @app.get("/repos/<o>/<r>/actions/artifacts/<int:aid>/zip")
    def archive(o: str, r: str, aid: int) -> Response:
        return redirect(f"{storage[0]}/storage/{aid}", 302)

    @app.get("/storage/<int:aid>")
    def blob(aid: int) -> Response:
        if request.headers.get("Authorization"):  # storage URLs are signed: no token
            return Response("token sent to storage", 400)
        return Response(state.artifacts[aid]["data"], mimetype="application/zip")

    return app


@contextmanager
def serve() -> Iterator[tuple[str, State]]:
    """The API and its storage, each on its own port of 127.0.0.1 (as api.github.com and
    the storage host differ)."""
    state = State()
    storage: list[str] = []
    app = _app(state, storage)
    servers = [make_server("127.0.0.1", 0, app, threaded=True) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    storage.append(f"http://127.0.0.1:{servers[1].server_port}")
    try:
        yield f"http://127.0.0.1:{servers[0].server_port}", state
    finally:
        for s in servers:
            s.shutdown()
