"""Benchmark: `iotc get devices -o json` of N devices at L ms latency, the whole command.

Issue 28: 10,000 devices at 20 ms took 3.0 s with pages read one at a time (0.65 s at 0 ms).
`get` now reads each template's pages in parallel as its `deviceCount` allows, as plan does.
Builds the account as plan_bench.py does (copies of one registered device), serves it with
`--latency L`, and times `iotc get devices -o json` as a child process; checks it printed N
rows, sorted by uniqueId.

    python benchmarks/get_bench.py --devices 10000 --latency 20 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleet_bench import serve
from plan_bench import build, split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="build the account in DIR and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        name = f"{args.devices}x1"
        db, folder, keys = f"{tmp}/e-{name}.db", Path(tmp) / f"m-{name}", f"{tmp}/keys-{name}"
        if not Path(f"{db}.built").exists():
            build(split(args.devices, 1), tmp, db, folder, keys)
        proc, env = serve(args.latency, db)
        walls = []
        try:
            for i in range(args.repeat):
                env["IOTC_CONFIG_DIR"] = f"{scratch}/config-{i}"  # a fresh login each time
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "iotc_apply", "get", "devices",
                                       "-o", "json"], env=env, capture_output=True, text=True)
                walls.append(time.perf_counter() - started)
                rows = json.loads(done.stdout)
                duids = [r["uniqueId"] for r in rows]
                assert done.returncode == 0 and len(rows) == args.devices, done.stderr[-500:]
                assert duids == sorted(duids)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"get devices -o json, {args.devices} devices, latency {args.latency:g} ms, "
          f"{args.repeat} runs: " + ", ".join(f"{w:.2f}" for w in walls) +
          f" s; min {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
          f"(pages one at a time: 3.0 s in the issue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
