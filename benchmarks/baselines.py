"""Benchmark: our plan against the two ways people read an account today, same run.

Issue 13 item 6. For N devices on one template, served with L ms latency:
- iotc plan (list endpoints, concurrent pages), whole command, start-up included;
- a Terraform-style refresh: one GET per declared object (`GET /Device/uniqueId/{duid}` per
  device, the template by code), 10 at a time, one keep-alive session;
- an official-client-style loop: serial, one lookup per device, a new connection per call
  (as `iotconnect-rest-api` does with `requests.request`).
The baselines read only the devices (the least a plan needs), so they flatter themselves.

    python benchmarks/baselines.py --devices 1000 10000 --latency 20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import MANIFEST, control, login, serve  # noqa: E402


def terraform_style(base: str, auth: dict[str, str], duids: list[str]) -> float:
    session = requests.Session()
    started = time.perf_counter()
    session.get(f"{base}/device-template/template-code/bench01", headers=auth, timeout=30)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda d: session.get(f"{base}/Device/uniqueId/{d}", headers=auth,
                                            timeout=30).status_code, duids))
    return time.perf_counter() - started


def official_style(base: str, auth: dict[str, str], duids: list[str]) -> float:
    started = time.perf_counter()
    for duid in duids:
        requests.request("GET", f"{base}/Device/uniqueId/{duid}", headers=auth, timeout=30)
    return time.perf_counter() - started


def bench(n: int, latency: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        folder.mkdir()
        (folder / "fleet.yaml").write_text(MANIFEST.format(n=n))
        proc, env = serve(0, f"{tmp}/e.db")
        env["IOTC_CONFIG_DIR"] = f"{tmp}/config"
        subprocess.run([sys.executable, "-m", "iotc_apply", "apply", str(folder),
                        "--auto-approve", "--keys-dir", f"{tmp}/keys"], env=env, check=True,
                       capture_output=True)
        proc.terminate()
        proc.wait(timeout=10)
        proc, env = serve(latency, f"{tmp}/e.db")
        env["IOTC_CONFIG_DIR"] = f"{tmp}/config2"
        try:
            duids = [f"bench-{i:06d}" for i in range(1, n + 1)]
            control(env, "/_emulator/stats/reset", "POST")
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "iotc_apply", "plan", str(folder),
                            "--keys-dir", f"{tmp}/keys"], env=env, check=True,
                           capture_output=True)
            ours = time.perf_counter() - started
            ours_requests = control(env, "/_emulator/stats")["total"]
            urls, auth = login(env)
            base = urls["deviceBaseUrl"]
            tf = terraform_style(base, auth, duids)
            official = official_style(base, auth, duids[: min(n, 1000)]) * n / min(n, 1000)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"N={n}, latency {latency:g} ms: iotc plan {ours:.2f} s ({ours_requests} requests, "
          f"start-up included); Terraform-style refresh {tf:.2f} s ({n + 1} requests, "
          f"{tf / ours:.1f}x); official-client loop {official:.1f} s ({n} requests"
          f"{', extrapolated from 1,000' if n > 1000 else ''}, {official / ours:.0f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--latency", type=float, default=20.0)
    args = parser.parse_args()
    for n in args.devices:
        bench(n, args.latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
