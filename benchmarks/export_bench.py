"""Benchmark: `iotc export` and `iotc get devices` of N devices, requests against the bound.

Issue 10's budget: an export of N devices stays within the plan's request bound
ceil(N/P) + 4T + 2F + U + 10 plus one request per upgrade file downloaded; `get` uses the
same list endpoints. Applies a fleet (one template, a DeviceSet of N, one firmware with two
upgrades and two files) to `iotc emulator serve`, then exports it and round-trips the export
through `iotc plan` (which must find no changes). Prints wall time, requests, bound, ratio.

    python benchmarks/export_bench.py --devices 10000 [--latency 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import MANIFEST, phase, serve  # noqa: E402

FIRMWARE = """---
apiVersion: iotc/v1
kind: Firmware
metadata: {{name: BENCHFW}}
spec:
  template: bench01
  hardware: "1.0"
  upgrades:
    - {{version: 1.0.0, files: [a.bin], release: true}}
    - {{version: 1.1.0, files: [b.bin]}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.0, help="ms per request")
    parser.add_argument("--parallelism", type=int, default=10)
    args = parser.parse_args()
    n, page = args.devices, 100
    proc, exports = serve(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "m"
            folder.mkdir()
            (folder / "fleet.yaml").write_text(MANIFEST.format(n=n) + FIRMWARE.format())
            (folder / "a.bin").write_bytes(b"a" * 4096)
            (folder / "b.bin").write_bytes(b"b" * 4096)
            env = {**exports, "IOTC_CONFIG_DIR": f"{tmp}/config"}
            common = ["--keys-dir", f"{tmp}/keys", "--parallelism", str(args.parallelism)]
            print(f"N={n} devices, latency {args.latency:.0f} ms, parallelism "
                  f"{args.parallelism}, page size {page}")
            phase("apply", ["apply", str(folder), "--auto-approve", *common], env, 0)
            out = Path(tmp) / "out"
            wall, requests, _, _ = phase("export", ["export", str(out), *common], env, 0)
            templates, firmwares, upgrades, files = 1, 1, 2, 2
            bound = math.ceil(n / page) + 4 * templates + 2 * firmwares + upgrades + 10 + files
            print(f"           export bound ceil(N/P)+4T+2F+U+10+files = {bound}: measured "
                  f"{requests} ({requests / bound:.2f} of bound, "
                  f"{'within' if requests <= bound else 'OVER'})")
            documents = sum(f.read_text().count("\nkind: Device") for f in out.glob("*.yaml"))
            print(f"           {n} devices became {documents} device document(s)")
            phase("plan", ["plan", str(out), "--detailed-exitcode", *common], env, 0)
            wall, requests, _, _ = phase("get", ["get", "devices", "-o", "json"], env, 0)
            bound = math.ceil(n / page) + templates + 2
            print(f"           get bound ceil(N/P)+T+2 = {bound}: measured {requests} "
                  f"({'within' if requests <= bound else 'OVER'})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
