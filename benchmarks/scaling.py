"""Benchmark: the README's scaling table, each row measured here, with its command.

Issue 32's eighth target: for 1,000, 10,000 and 100,000 devices, the time, requests and peak
RSS of plan (20 ms latency), apply (20 ms at p = 10, and 150 ms at p = 100), validate, export
and get. Each command runs as a child process (its own peak RSS, from wait4) against
`iotc emulator serve` in another process. Plan, get and export run on an account built as
plan_bench.py builds it (copies of one registered device: seconds instead of minutes);
apply registers every device for real, keys included, so its 100,000 rows take long
(`--apply-max N` bounds the sizes it runs; the table says which were not run). Validate
reads N Device documents (manifest_load.py's input), the costlier way to declare a fleet.
Prints one markdown row per measurement: paste the table into the README.

    python benchmarks/scaling.py --sizes 1000 10000 100000 --apply-max 10000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import control, serve, served_fleet  # noqa: E402
from manifest_load import generate  # noqa: E402
from plan_bench import build, split, timed  # noqa: E402

IOTC = [sys.executable, "-m", "iotc_apply"]


def row(what: str, n: int, wall: float, requests: int | None, rss: float, command: str) -> str:
    shown = "" if requests is None else f"{requests:,}"
    return f"| {what} | {n:,} | {wall:.2f} s | {shown} | {rss:.0f} MB | `{command}` |"


def served_rows(n: int, scratch: str) -> list[str]:
    """Plan, get and export of N devices (10 templates from 10,000 up) at 20 ms."""
    templates = 10 if n >= 10_000 else 1
    name = f"{n}x{templates}"
    db, folder, keys = f"{scratch}/e-{name}.db", Path(scratch) / f"m-{name}", \
        f"{scratch}/keys-{name}"
    build(split(n, templates), scratch, db, folder, keys)
    proc, env = serve(20.0, db)
    out = []
    try:
        for what, args in (
                ("plan (20 ms)", ["plan", str(folder), "--detailed-exitcode", "--keys-dir",
                                  keys]),
                ("get devices (20 ms)", ["get", "devices", "-o", "json"]),
                ("export (20 ms)", ["export", f"{scratch}/exported-{name}", "--keys-dir",
                                    keys])):
            control(env, "/_emulator/stats/reset", "POST")
            env["IOTC_CONFIG_DIR"] = f"{scratch}/config-{what.split()[0]}-{name}"
            wall, rss, code, tail = timed([*IOTC, *args], env)
            assert code == 0, tail
            requests = int(control(env, "/_emulator/stats")["total"])  # type: ignore[arg-type]
            shown = " ".join(["iotc", *args]).replace(scratch, "$TMP")
            out.append(row(what, n, wall, requests, rss, shown))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out


def apply_row(n: int, latency: float, parallelism: int) -> str:
    with served_fleet(n, latency) as (tmp, folder, env):
        args = ["apply", str(folder), "--auto-approve", "--keys-dir", f"{tmp}/keys",
                "--parallelism", str(parallelism)]
        wall, rss, code, tail = timed([*IOTC, *args], env)
        assert code == 0, tail
        requests = int(control(env, "/_emulator/stats")["total"])  # type: ignore[arg-type]
        shown = f"iotc apply m --auto-approve --parallelism {parallelism}"
        return row(f"apply ({latency:g} ms, p = {parallelism})", n, wall, requests, rss,
                   shown)


def validate_row(n: int, scratch: str) -> str:
    out = Path(scratch) / f"docs-{n}"
    generate(out, n)
    wall, rss, code, tail = timed([*IOTC, "validate", str(out)], {})
    assert code == 0, tail
    return row("validate (Device documents)", n, wall, None, rss, "iotc validate docs/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--apply-max", type=int, default=10_000,
                        help="run the apply rows only up to this many devices")
    args = parser.parse_args()
    print("| command | devices | time | requests | peak RSS | command line |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as scratch:
            for line in served_rows(n, scratch):
                print(line, flush=True)
            print(validate_row(n, scratch), flush=True)
        if n <= args.apply_max:
            print(apply_row(n, 20.0, 10), flush=True)
            print(apply_row(n, 150.0, 100), flush=True)
        else:
            print(f"| apply | {n:,} | not run (--apply-max {args.apply_max:,}) | | | |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
