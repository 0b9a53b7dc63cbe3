"""Benchmark: load N devices written as individual `Device` documents.

Generates the input (one template and N Device documents, in files of 1,000 documents) under
a temporary directory (or --out), then runs `iotc validate` on it in child processes and
prints wall time (min / median of --repeat runs) and peak memory against the bounds (issue
32: 100,000 documents in at most 4 s and 300 MB; a tree this large is read on every core).

    python benchmarks/manifest_load.py --devices 10000
    python benchmarks/manifest_load.py --devices 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = """apiVersion: iotc/v1
kind: Template
metadata:
  name: bench01
spec:
  name: Benchmark sensor
  authType: self-signed
  attributes:
    - {name: temperature, type: DECIMAL, unit: C}
"""

DEVICE = """---
apiVersion: iotc/v1
kind: Device
metadata:
  name: bench-{index:06d}
spec:
  template: bench01
  displayName: Benchmark device {index}
  entity: Plant-A
"""


def generate(out: Path, devices: int, per_file: int = 1000) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "template.yaml").write_text(TEMPLATE)
    for start in range(0, devices, per_file):
        stop = min(devices, start + per_file)
        text = "".join(DEVICE.format(index=i) for i in range(start, stop))
        (out / f"devices-{start // per_file:04d}.yaml").write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--bound", type=float, default=4.0, help="seconds (default 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "manifests"
        generate(out, args.devices)
        size = sum(p.stat().st_size for p in out.glob("*.yaml"))
        command = [sys.executable, "-m", "iotc_apply", "validate", str(out)]
        walls = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    low, middle = min(walls), statistics.median(walls)
    print(f"devices: {args.devices}  input: {size / 1e6:.1f} MB")
    print(f"iotc validate: exit {done.returncode}: {done.stdout.strip() or done.stderr[-300:]}")
    print(f"wall time: {low:.2f} / {middle:.2f} s min / median of {args.repeat} (bound "
          f"{args.bound:g} s, ratio {low / args.bound:.2f} / {middle / args.bound:.2f})  peak "
          f"memory (child max RSS): {peak_kib / 1024:.0f} MiB (bound 300 MiB)")
    print(f"per device: {low / args.devices * 1e6:.0f} us")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
