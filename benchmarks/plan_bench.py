"""Benchmark: `iotc plan` of N devices over T templates at L ms latency, start-up included.

Issue 13's figures: plan of 10,000 devices on one template, L = 20 ms, p = 10, P = 100:
<= 1.0 s for the whole command and <= 1.05 x the minimum request count; 100,000 devices over
10 templates: <= 8 s and <= 600 MB peak RSS. Builds the account once, then serves that SQLite
file with `--latency L` and times `iotc plan` (which must find no changes) as a child
process: wall time, its own peak RSS (wait4), and the requests it made against the minimum a
perfect client needs: discovery, basic token and login (3), the entity and template lists
(2), each template's detail and attributes (2T), the firmware list (1), and per template
ceil(N_t/P) + 1 device pages (the last one empty: /Device reports no count).

The build applies one device per template for real (key, certificate, registration), then
copies that device's stored record N_t - 1 times in the emulator's SQLite file (new GUID and
DUID; the registered certificate is shared and its thumbprint cleared) and hard-links its key
folder for each copy: an account and key store of the shape a real apply leaves, in seconds
instead of the ~7 minutes 100,000 real registrations take at no latency. Only plans run on
it; the copies' certificates are not unique, so do not apply or destroy it.

    python benchmarks/plan_bench.py --devices 10000 --latency 20 --repeat 5
    python benchmarks/plan_bench.py --devices 100000 --templates 10 --repeat 3 --keep /tmp/pb
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import control, serve  # noqa: E402

TEMPLATE = """apiVersion: iotc/v1
kind: Template
metadata: {{name: bench{t:02}}}
spec:
  name: Benchmark sensor {t}
  authType: self-signed
  attributes: [{{name: temperature, type: DECIMAL}}]
---
apiVersion: iotc/v1
kind: DeviceSet
metadata: {{name: set{t:02}}}
spec: {{count: {n}, uniqueId: "b{t:02}-{{index:06}}", template: bench{t:02}, entity: Plant-A}}
"""
PAGE = 100


def manifests(per_template: list[int]) -> str:
    return "---\n".join(TEMPLATE.format(t=t, n=n) for t, n in enumerate(per_template))


def split(n: int, templates: int) -> list[int]:
    return [n // templates + (1 if t < n % templates else 0) for t in range(templates)]


def build(per_template: list[int], tmp: str, db: str, folder: Path, keys: str) -> None:
    """One real device per template, then copies (see the module's docstring)."""
    for stale in Path(tmp).glob(f"{Path(db).name}*"):  # a build that did not finish
        stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fleet.yaml").write_text(manifests([1] * len(per_template)))
    proc, env = serve(0, db)
    env["IOTC_CONFIG_DIR"] = f"{tmp}/config"
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "iotc_apply", "apply", str(folder),
                        "--auto-approve", "--keys-dir", keys], env=env, check=True,
                       capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    (account,) = [p for p in Path(keys).iterdir() if p.is_dir()]
    with sqlite3.connect(db) as conn:
        for t, n in enumerate(per_template):
            first = f"b{t:02}-000001"
            (body,) = conn.execute("SELECT body FROM obj WHERE kind = 'device' AND nkey = ?",
                                   (first,)).fetchone()
            record = json.loads(body)
            rows = []
            for i in range(2, n + 1):
                duid = f"b{t:02}-{i:06}"
                guid = str(uuid.uuid4()).upper()
                rows.append(("device", guid, duid, record["templateGuid"], json.dumps(
                    {**record, "guid": guid, "uniqueId": duid, "displayName": duid,
                     "thumbprint": None})))
                copy = account / duid
                copy.mkdir(mode=0o700)
                for name in ("key.pem", "cert.pem", "iotcDeviceConfig.json"):
                    os.link(account / first / name, copy / name)
            conn.executemany("INSERT INTO obj (kind, guid, nkey, parent, body) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
    (folder / "fleet.yaml").write_text(manifests(per_template))
    print(f"built {sum(per_template)} devices over {len(per_template)} template(s) in "
          f"{time.perf_counter() - started:.0f} s")
    Path(f"{db}.built").touch()


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in MB (of this child alone), exit code, output tail."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return wall, usage.ru_maxrss / 1024, proc.returncode, output[-600:].decode(errors="replace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--templates", type=int, default=1)
    parser.add_argument("--latency", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="build the account in DIR and keep it; "
                        "a later run with the same DIR, --devices and --templates reuses it")
    parser.add_argument("--bound", type=float, help="seconds (default: 1.0 for one template, "
                        "8.0 for more)")
    args = parser.parse_args()
    per_template = split(args.devices, args.templates)
    bound = args.bound or (1.0 if args.templates == 1 else 8.0)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        name = f"{args.devices}x{args.templates}"
        db, folder, keys = f"{tmp}/e-{name}.db", Path(tmp) / f"m-{name}", f"{tmp}/keys-{name}"
        if not Path(f"{db}.built").exists():
            build(per_template, tmp, db, folder, keys)
        proc, env = serve(args.latency, db)
        walls, peaks, requests = [], [], 0
        try:
            for i in range(args.repeat):
                control(env, "/_emulator/stats/reset", "POST")
                env["IOTC_CONFIG_DIR"] = f"{scratch}/config-{i}"  # a fresh login, as in CI
                wall, peak, code, tail = timed(
                    [sys.executable, "-m", "iotc_apply", "plan", str(folder),
                     "--detailed-exitcode", "--keys-dir", keys], env)
                assert code == 0 and "No changes." in tail, tail
                walls.append(wall)
                peaks.append(peak)
                requests = int(control(env, "/_emulator/stats")["total"])  # type: ignore[arg-type]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    minimum = 3 + 2 + 2 * args.templates + 1 + sum(math.ceil(n / PAGE) + 1 for n in per_template)
    print(f"plan of {args.devices} devices over {args.templates} template(s), latency "
          f"{args.latency:g} ms, parallelism 10, page {PAGE}, {args.repeat} runs: wall min "
          f"{min(walls):.2f} s median {statistics.median(walls):.2f} s (bound {bound:g} s, "
          f"ratio {min(walls) / bound:.2f} min, {statistics.median(walls) / bound:.2f} median);"
          f" peak RSS max {max(peaks):.0f} MB (bound 600 MB); requests {requests} vs minimum "
          f"{minimum} ({requests / minimum:.2f}, bound 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
