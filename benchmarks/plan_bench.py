"""Benchmark: `iotc plan` of N devices on one template at L ms latency, start-up included.

Issue 13's figure: plan of 10,000 devices, L = 20 ms, p = 10, P = 100: <= 1.0 s for the whole
command and <= 1.05 x the minimum request count. Builds the account once (apply at no
latency into a SQLite file), then serves that file with `--latency L` and times `iotc plan`
(which must find no changes) as a child process, and counts the requests it made against
the minimum a perfect client needs: discovery, basic token and login (3), the entity and
template lists (2), the template's detail and attributes (2), the firmware list (1), and
ceil(N/P) + 1 device pages (the last one empty: /Device reports no count).

    python benchmarks/plan_bench.py --devices 10000 --latency 20 --repeat 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import MANIFEST, control, serve  # noqa: E402


def build(n: int, tmp: str, db: str, folder: Path, common: list[str]) -> None:
    """The account: N devices applied at no latency into the SQLite file `db`."""
    for stale in Path(tmp).glob(f"{Path(db).name}*"):  # a build that did not finish
        stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fleet.yaml").write_text(MANIFEST.format(n=n))
    proc, env = serve(0, db)
    env["IOTC_CONFIG_DIR"] = f"{tmp}/config"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "iotc_apply", "apply", str(folder),
                    "--auto-approve", *common], env=env, check=True, capture_output=True)
    print(f"built {n} devices in {time.perf_counter() - started:.0f} s (no latency)")
    proc.terminate()
    proc.wait(timeout=10)
    Path(f"{db}.built").touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="build the account in DIR and keep it; "
                        "a later run with the same DIR and --devices reuses it")
    args = parser.parse_args()
    n, page = args.devices, 100
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        db, folder = f"{tmp}/e-{n}.db", Path(tmp) / f"m-{n}"
        common = ["--keys-dir", f"{tmp}/keys-{n}"]
        if not Path(f"{db}.built").exists():
            build(n, tmp, db, folder, common)
        proc, env = serve(args.latency, db)
        walls, requests = [], 0
        try:
            for i in range(args.repeat):
                control(env, "/_emulator/stats/reset", "POST")
                env["IOTC_CONFIG_DIR"] = f"{scratch}/config-{i}"  # a fresh login, as in CI
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "iotc_apply", "plan", str(folder),
                                       "--detailed-exitcode", *common], env=env,
                                      capture_output=True, text=True)
                walls.append(time.perf_counter() - started)
                requests = int(control(env, "/_emulator/stats")["total"])  # type: ignore[arg-type]
                assert done.returncode == 0, done.stdout[-500:] + done.stderr[-500:]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    minimum = 3 + 2 + 2 + 1 + math.ceil(n / page) + 1
    print(f"plan of {n} devices, latency {args.latency:g} ms, parallelism 10, page {page}: "
          f"wall min {min(walls):.2f} s median {statistics.median(walls):.2f} s (bound 1.0 s, "
          f"ratio {min(walls):.2f}); requests {requests} vs minimum {minimum} "
          f"({requests / minimum:.2f}, bound 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
