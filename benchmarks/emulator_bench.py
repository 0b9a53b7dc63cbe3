"""Benchmark: requests/s the emulator serves from 10 client threads, per WSGI server.

Each server runs the same emulator app in its own process: werkzeug's development server
(what `iotc emulator serve` used before, HTTP/1.1 keep-alive, a thread per connection),
cheroot (what it uses now: the shipped `iotc emulator serve` command itself) and, when
installed, waitress; every one with the collector tuned as `iotc` tunes it. The load comes
from this process, 10 threads each holding one kept-alive connection:

- `POST /Device`: N registrations, each with its own certificate (made before timing);
- `GET /Device?pageSize=100`: M page reads over the devices just made.

Printed per server and call: requests/s and the server's CPU per request (user + system of
its process, from /proc), min and median over --repeat runs; the load generator shares
the machine's cores, so requests/s says what a client sees and CPU/request what the server
costs. Needs Linux (/proc).

    python benchmarks/emulator_bench.py --repeat 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import login, process_cpu  # noqa: E402
from fleet_bench import serve as serve_shipped  # noqa: E402

SERVERS = ("werkzeug", "cheroot", "waitress")
THREADS = 10
TEMPLATE = {"code": "bench01", "name": "Bench", "authType": 3, "messageVersion": "2.1",
            "attributes": [{"name": "t", "type": "DECIMAL", "unit": "C"}], "commands": [],
            "msgCode": "", "greenGrass": "0", "wireless": "0",
            "properties": {"description": None, "dataFrequency": "60",
                           "fileSupport": False}, "_meta": {"version": "2.0"}}


def serve(kind: str) -> None:
    """Child process: the emulator app on another server than the shipped one, with the
    collector tuned as `iotc` tunes it; prints its port, then serves."""
    from iotc_apply.cli import tune_gc
    from iotc_apply.emulator.app import create_app

    tune_gc()
    app = create_app()
    if kind == "werkzeug":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):  # as iotc_apply/emulator/server.py had it
            protocol_version = "HTTP/1.1"

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                return

        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
        print(server.server_port, flush=True)
        server.serve_forever(0.05)
    else:
        import logging

        from waitress.server import create_server

        logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth is 6"
        wserver = create_server(app, host="127.0.0.1", port=0, threads=THREADS)
        print(wserver.effective_port, flush=True)  # type: ignore[union-attr]
        wserver.run()


def self_signed(cn: str) -> str:
    """A certificate for one registration, made as the key store makes them."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from iotc_apply.keystore import self_signed as certificate

    return certificate(ec.generate_private_key(ec.SECP256R1()), cn)


class Target:
    """A served emulator, logged in, with one template to register devices against."""

    def __init__(self, kind: str) -> None:
        from iotc_apply.emulator.core import Account

        if kind == "cheroot":  # the shipped command, `iotc emulator serve`, as users run it
            self.proc, env = serve_shipped(0.0)
        else:
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind],
                                         stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            root = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"
            acc = Account()
            env = {"IOTC_DISCOVERY_URL": f"{root}/api/uisdk", "IOTC_SKEY": acc.solution_key,
                   "IOTC_ENV": acc.env, "IOTC_PF": acc.pf, "IOTC_USER": acc.user_email,
                   "IOTC_PASS": acc.user_password}
        urls, self.headers = login(env)
        self.devices = urls["deviceBaseUrl"] + "/Device"
        made = requests.post(urls["deviceBaseUrl"] + "/device-template/quick", timeout=30,
                             headers=self.headers,
                             files={"file": ("t.json", json.dumps(TEMPLATE).encode())})
        self.template = made.json()["data"][0]["deviceTemplateGuid"]
        self.entity = next(e["guid"] for e in requests.get(
            urls["userBaseUrl"] + "/Entity", headers=self.headers, timeout=30).json()["data"]
            if e["parentEntityGuid"] is None)

    def cpu_seconds(self) -> float:
        return process_cpu(self.proc.pid)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


class Plain:
    """One kept-alive `http.client` connection: a load generator that costs ~0.3 ms of CPU
    a request where a requests session costs ~1 ms, so more of the two cores is left to the
    server being measured (`--client plain`)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.conn: http.client.HTTPConnection | None = None

    def _send(self, method: str, url: str, body: bytes | None) -> Plain.Answer:
        parts = urllib.parse.urlsplit(url)
        if self.conn is None:
            self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {**self.headers, "Content-Type": "application/json"} if body else \
            self.headers
        self.conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                          body=body, headers=headers)
        resp = self.conn.getresponse()
        return Plain.Answer(resp.status, resp.read())

    def post(self, url: str, timeout: float, json: Any) -> Plain.Answer:
        import json as codec

        return self._send("POST", url, codec.dumps(json).encode())

    def get(self, url: str, timeout: float, params: dict[str, Any]) -> Plain.Answer:
        return self._send("GET", f"{url}?{urllib.parse.urlencode(params)}", None)

    class Answer:
        def __init__(self, status: int, body: bytes) -> None:
            self.status_code, self.text = status, body.decode("utf-8", "replace")


def load(target: Target, calls: list[Any], client: str) -> tuple[float, float]:
    """Run the calls from THREADS threads (one kept-alive connection each); requests/s and
    server CPU milliseconds per request."""
    local = threading.local()

    def session() -> Any:
        if not hasattr(local, "s"):
            if client == "plain":
                local.s = Plain(dict(target.headers))
            else:
                local.s = requests.Session()
                local.s.headers.update(target.headers)
        return local.s

    def one(call: Any) -> None:
        resp = call(session())
        assert resp.status_code == 200, resp.text[:200]

    cpu = target.cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, calls))
    wall = time.perf_counter() - started
    return len(calls) / wall, (target.cpu_seconds() - cpu) * 1000 / len(calls)


def run_once(kind: str, certs: list[str], gets: int, run: int, client: str) -> \
        dict[str, tuple[float, float]]:
    target = Target(kind)
    try:
        def post(i: int) -> Any:
            return lambda s: s.post(target.devices, timeout=60, json={
                "deviceTemplateGuid": target.template, "uniqueId": f"b{run}-{i:06d}",
                "displayName": f"b {i}", "entityGuid": target.entity,
                "certificateText": certs[i]})

        pages = max(1, len(certs) // 100)

        def get(i: int) -> Any:
            return lambda s: s.get(target.devices, timeout=60,
                                   params={"pageSize": 100, "pageNumber": i % pages + 1})

        return {"POST /Device": load(target, [post(i) for i in range(len(certs))], client),
                "GET /Device?pageSize=100": load(target, [get(i) for i in range(gets)],
                                                 client)}
    finally:
        target.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("werkzeug", "waitress"), help=argparse.SUPPRESS)
    parser.add_argument("--posts", type=int, default=2000, metavar="N")
    parser.add_argument("--gets", type=int, default=1000, metavar="M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--client", choices=("requests", "plain"), default="requests",
                        help="load generator per thread: a requests session, or a plain "
                             "http.client connection (less CPU taken from the server)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    kinds = list(args.servers)
    if "waitress" in kinds:
        try:
            import waitress  # noqa: F401
        except ImportError:
            print("waitress is not installed: skipped (pip install waitress to compare)")
            kinds.remove("waitress")
    certs = [self_signed(f"bench-{i}") for i in range(args.posts)]
    print(f"{THREADS} client threads ({args.client}), {args.posts} POST /Device, {args.gets} "
          f"GET /Device pages of 100, {args.repeat} runs per server, {os.cpu_count()} cores")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for run in range(args.repeat):
        for kind in kinds:  # interleaved: machine noise falls on every server alike
            for call, figures in run_once(kind, certs, args.gets, run, args.client).items():
                results.setdefault(call, {}).setdefault(kind, []).append(figures)
    for call, per_kind in results.items():
        print(call)
        for kind, runs in per_kind.items():
            rates = [r for r, _ in runs]
            cpus = [c for _, c in runs]
            print(f"  {kind:<9} {statistics.median(rates):7.0f} req/s median "
                  f"(max {max(rates):.0f})   server CPU {statistics.median(cpus):5.2f} ms/req "
                  f"median (min {min(cpus):.2f})")
        base = statistics.median(r for r, _ in per_kind["werkzeug"]) \
            if "werkzeug" in per_kind else None
        if base and "cheroot" in per_kind:
            now = statistics.median(r for r, _ in per_kind["cheroot"])
            print(f"  cheroot / werkzeug: {now / base:.2f}x requests/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
