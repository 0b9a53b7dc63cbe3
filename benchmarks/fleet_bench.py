"""Benchmark: plan, apply and destroy N devices against the emulator with injected latency.

Starts `iotc emulator serve` in its own process (so client and server do not share a GIL),
writes manifests (one self-signed template, a DeviceSet of N), then runs, each as a child
process: apply (which plans first), plan (which must find no changes), destroy. Prints per
phase: wall time, requests the emulator served, and for apply the ratio to the lower bound
N x latency / parallelism, next to the time certificate generation alone takes here; and the
plan's request count against the issue's bound ceil(N/P) + 4T + 2F + U + 10.

    python benchmarks/fleet_bench.py --devices 100 1000 --latency 20 --parallelism 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import requests

MANIFEST = """apiVersion: iotc/v1
kind: Template
metadata: {{name: bench01}}
spec:
  name: Benchmark sensor
  authType: self-signed
  attributes: [{{name: temperature, type: DECIMAL}}]
---
apiVersion: iotc/v1
kind: DeviceSet
metadata: {{name: bench}}
spec: {{count: {n}, uniqueId: "bench-{{index:06}}", template: bench01, entity: Plant-A}}
"""


def serve(latency: float, db: str = ":memory:", *flags: str) -> \
        tuple[subprocess.Popen[str], dict[str, str]]:
    """`iotc emulator serve` in its own process; the environment that points iotc at it
    (the caller's environment plus the six IOTC_* lines the server prints)."""
    proc = subprocess.Popen([sys.executable, "-m", "iotc_apply", "emulator", "serve", "--db",
                             db, "--latency", str(latency), *flags],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    env = dict(os.environ)
    for _ in range(6):
        name, _, value = proc.stdout.readline().removeprefix("export ").strip().partition("=")
        env[name] = value.strip("'")
    return proc, env


def control(env: dict[str, str], path: str, method: str = "GET") -> dict[str, object]:
    root = env["IOTC_DISCOVERY_URL"].removesuffix("/api/uisdk")
    req = urllib.request.Request(root + path, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:  # loopback only
        return json.loads(resp.read())


def login(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The service base URLs and a bearer header, as any client gets them (discovery, basic
    token, login), from the IOTC_* lines `serve` printed."""
    urls = requests.get(f"{env['IOTC_DISCOVERY_URL']}/solutionkey/{env['IOTC_SKEY']}/env/"
                        f"{env['IOTC_ENV']}", params={"pf": env.get("IOTC_PF", "aws"),
                                                      "version": "2.1"},
                        timeout=30).json()["data"]
    basic = requests.get(urls["authBaseUrl"] + "/Auth/basic-token", timeout=30).json()["data"]
    token = requests.post(urls["authBaseUrl"] + "/Auth/login", timeout=30,
                          headers={"Authorization": f"Basic {basic}",
                                   "Solution-key": env["IOTC_SKEY"]},
                          json={"username": env["IOTC_USER"], "password": env["IOTC_PASS"]}
                          ).json()["access_token"]
    return urls, {"Authorization": f"Bearer {token}"}


def run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "iotc_apply", *args], env=env,
                          capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def child_cpu() -> tuple[float, float]:
    """User and system seconds of the children waited for so far (the CLI runs; the served
    emulator counts only once it is stopped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process (a served emulator) has used so far,
    from /proc: Linux only."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def certificate_seconds(n: int, parallelism: int) -> float:
    """Time to generate N keys and certificates and write them durably (the key store's
    part of apply), with the same parallelism, measured here on this disk."""
    from concurrent.futures import ThreadPoolExecutor

    from iotc_apply.keystore import KeyStore, device_config

    sample = min(n, 300)
    with tempfile.TemporaryDirectory() as tmp:
        store = KeyStore(Path(tmp))
        started = time.perf_counter()
        with ThreadPoolExecutor(parallelism) as pool:
            list(pool.map(lambda i: store.ensure(f"d{i}", f"CPID-d{i}", device_config(
                f"d{i}", "CPID", "poc", "aws", False)), range(sample)))
        return (time.perf_counter() - started) * n / sample


def phase(name: str, args: list[str], env: dict[str, str], expect: int) -> \
        tuple[float, int, float, float]:
    """Run one command; returns wall time, requests served, the executor's own time (the
    "(X s)" of "Apply complete", without process start-up and planning) and client CPU."""
    control(env, "/_emulator/stats/reset", "POST")
    before = child_cpu()
    wall, code, output = run(args, env)
    after = child_cpu()
    user, system = after[0] - before[0], after[1] - before[1]
    cpu = user + system
    requests = int(control(env, "/_emulator/stats")["total"])  # type: ignore[arg-type]
    last = [line for line in output.splitlines() if line.strip()][-1:]
    status = "ok" if code == expect else f"UNEXPECTED exit {code}: {last}"
    found = re.search(r"Apply complete: .*\((\d+\.\d) s\)", output)
    executing = float(found.group(1)) if found else 0.0
    shown = f", executing {executing:.1f} s" if found else ""
    print(f"  {name:<8} {wall:8.2f} s{shown}  {requests:7d} requests  client CPU "
          f"{cpu:.2f} s (user {user:.2f}, sys {system:.2f})  exit {code} ({status})")
    return wall, requests, executing, cpu


@contextlib.contextmanager
def served_fleet(n: int, latency: float) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A served emulator with `latency`, and a scratch folder holding the fleet's manifests
    (`m/fleet.yaml`: one template, a DeviceSet of N): (scratch, manifests, environment)."""
    proc, exports = serve(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "m"
            folder.mkdir()
            (folder / "fleet.yaml").write_text(MANIFEST.format(n=n))
            yield tmp, folder, {**exports, "IOTC_CONFIG_DIR": f"{tmp}/config"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench(n: int, latency: float, parallelism: int, page: int) -> None:
    with served_fleet(n, latency) as (tmp, folder, env):
        common = ["--keys-dir", f"{tmp}/keys", "--parallelism", str(parallelism)]
        print(f"N={n} devices, latency {latency:.0f} ms, parallelism {parallelism}")
        wall, _, executing, cpu = phase("apply", ["apply", str(folder), "--auto-approve",
                                                  *common], env, 0)
        print(f"           client CPU per device created: {cpu * 1000 / n:.2f} ms, start-up "
              f"and plan included (bound 1.0 ms: ratio {cpu / n / 0.001:.2f})")
        bound = n * latency / 1000 / parallelism
        certs = certificate_seconds(n, parallelism)
        print(f"           lower bound N x latency / parallelism = {bound:.2f} s; "
              f"keys and certificates alone {certs:.2f} s")
        print(f"           ratio to bound + certificates: whole command "
              f"{wall / (bound + certs):.2f}, executor alone {executing / (bound + certs):.2f}")
        _, plan_requests, _, _ = phase("plan", ["plan", str(folder), "--detailed-exitcode",
                                          *common], env, 0)
        limit = math.ceil(n / page) + 4 * 1 + 2 * 0 + 0 + 10
        print(f"           plan request bound ceil(N/P)+4T+2F+U+10 = {limit} "
              f"({'within' if plan_requests <= limit else 'OVER'})")
        phase("destroy", ["destroy", str(folder), "--auto-approve", *common], env, 0)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"           peak memory of any child process so far: {peak:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--latency", type=float, default=20.0, help="ms per request")
    parser.add_argument("--parallelism", type=int, default=10)
    args = parser.parse_args()
    for n in args.devices:
        bench(n, args.latency, args.parallelism, page=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
