"""Benchmark: apply under a rate limit; the client must adapt, not fail.

Issue 13's figure: with the emulator at R requests/s and no --parallelism given, apply of N
devices has 0 failed changes and takes <= 1.15 x N/R. Serves the emulator in its own process
with `--rate-limit R`, applies a DeviceSet of N (one template), and prints wall time, the
bound, the ratio, the number of 429s the emulator answered and the failed changes.

    python benchmarks/rate_limit_bench.py --devices 100 --rate 5
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import MANIFEST, control, serve  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0)
    args = parser.parse_args()
    proc, env = serve(0, ":memory:", "--rate-limit", str(args.rate))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "m").mkdir()
            (Path(tmp) / "m" / "fleet.yaml").write_text(MANIFEST.format(n=args.devices))
            env["IOTC_CONFIG_DIR"] = f"{tmp}/config"
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "iotc_apply", "apply",
                                   str(Path(tmp) / "m"), "--auto-approve", "--keys-dir",
                                   f"{tmp}/keys"], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
        stats = control(env, "/_emulator/stats")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    verdict = [line for line in done.stdout.splitlines() if "complete" in line]
    failed = re.search(r"(\d+) failed", done.stdout)
    bound = args.devices / args.rate
    print(f"N={args.devices} devices at {args.rate:g} requests/s, default parallelism")
    print(f"  apply: exit {done.returncode}, {wall:.1f} s; bound N/R = {bound:.1f} s; ratio "
          f"{wall / bound:.2f} (target <= 1.15)")
    print(f"  requests served {stats['total']}; failed changes "
          f"{failed.group(1) if failed else 0}; {verdict[-1] if verdict else done.stderr[-200:]}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
