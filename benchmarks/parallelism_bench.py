"""Benchmark: does apply's throughput follow --parallelism at real latency?

Issue 32's first target: at 150 ms emulator latency, 2,000 creates at p = 100 take at most
1.3 x N*L/p plus the key store's time, and client CPU per device does not rise with p.
For each p, serves a fresh emulator with the latency (in its own process), applies a
DeviceSet of N (one self-signed template) as a child process, and prints the executor's
time ("Apply complete (X s)"), the bound N*L/p + keys (the key store's time alone, measured
here at the same p), the ratio, and the child's CPU per device; min and median of --repeat.

    python benchmarks/parallelism_bench.py --devices 2000 --latency 150 --parallelism 10 32 100
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import certificate_seconds, child_cpu, run, served_fleet  # noqa: E402


def once(n: int, latency: float, p: int) -> tuple[float, float]:
    """(executor seconds, client CPU seconds) of one apply of N devices."""
    with served_fleet(n, latency) as (tmp, folder, env):
        before = sum(child_cpu())
        _, code, output = run(["apply", str(folder), "--auto-approve", "--keys-dir",
                               f"{tmp}/keys", "--parallelism", str(p)], env)
        cpu = sum(child_cpu()) - before
        found = re.search(r"Apply complete: .*\((\d+\.\d) s\)", output)
        assert code == 0 and found, output[-2000:]
        return float(found.group(1)), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=150.0, help="ms per request")
    parser.add_argument("--parallelism", type=int, nargs="+", default=[10, 32, 100])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.devices
    print(f"apply of {n} devices at {args.latency:g} ms, {args.repeat} runs per parallelism")
    for p in args.parallelism:
        runs = [once(n, args.latency, p) for _ in range(args.repeat)]
        execs = [e for e, _ in runs]
        per_device = [c / n * 1000 for _, c in runs]
        floor = n * args.latency / 1000 / p
        keys = certificate_seconds(n, p)
        bound = 1.3 * floor + keys
        print(f"  p={p:<4} executor min {min(execs):6.2f} s median {statistics.median(execs):6.2f}"
              f" s; N*L/p {floor:.2f} s, keys alone {keys:.2f} s, bound 1.3*N*L/p + keys "
              f"{bound:.2f} s (ratio min {min(execs) / bound:.2f}, median "
              f"{statistics.median(execs) / bound:.2f}); client CPU per device min "
              f"{min(per_device):.2f} ms median {statistics.median(per_device):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
