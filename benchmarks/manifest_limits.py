"""Benchmark: the worst files the manifest limits still accept (or refuse last), timed.

Issue 18's bound: `iotc validate` of any one file the loader accepts finishes in under 2 s
and 500 MB. The limits are per file: MAX_FILE_BYTES and MAX_NODES (yamlsafe.py), MAX_DEPTH.
Each case below is generated just under (or right at) a limit, with the content that costs
most per byte or per node, and validated in a child process; the script prints wall time and
peak RSS against the bounds and exits 1 if a case is over.

    python benchmarks/manifest_limits.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from iotc_apply.manifest.yamlsafe import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

BOUND_S, BOUND_MB = 2.0, 500
TEMPLATE = ("apiVersion: iotc/v1\nkind: Template\nmetadata:\n  name: t1\nspec:\n  name: T\n"
            "  authType: self-signed\n  attributes:\n")
DEVICE = ("---\napiVersion: iotc/v1\nkind: Device\nmetadata:\n  name: d-{i:07d}\nspec:\n"
          "  template: t1\n  displayName: Device {i}\n  entity: Plant-A\n")
NODES_PER_DEVICE = 22  # document start/end, 3 mappings, 8 keys and 8 scalar values


def devices() -> str:
    """Valid Device documents up to the node limit (the realistic large file)."""
    count = MAX_NODES // NODES_PER_DEVICE - 10
    return TEMPLATE + "    - {name: a, type: DECIMAL}\n" + "".join(
        DEVICE.format(i=i) for i in range(count))


def attributes() -> str:
    """One template with as many attributes as the node limit allows (one big document)."""
    count = MAX_NODES // 6 - 10
    return TEMPLATE + "".join(f"    - {{name: a{i}, type: DECIMAL}}\n" for i in range(count))


def flow_ints() -> str:
    """The most nodes per byte: a flow list of one-digit integers in an unknown field."""
    return TEMPLATE + "    - {name: a, type: DECIMAL}\n  junk: [" + "0," * (MAX_NODES - 40) \
        + "0]\n"


def broken_documents() -> str:
    """The most diagnostics: every document an error (three nodes each)."""
    return "--- 1\n" * (MAX_NODES // 3 - 1)


def aliases() -> str:
    """Aliases expanded up to the expansion bound (3 x nodes + 10,000 copied nodes)."""
    anchored = MAX_NODES // 4
    return TEMPLATE + "    - {name: a, type: DECIMAL}\n  junk: &x [" + "0," * anchored \
        + "0]\n  more: [*x, *x, *x]\n"


def big_string() -> str:
    """The byte limit, almost all of it one scalar."""
    head = TEMPLATE + "    - {name: a, type: DECIMAL, unit: "
    return head + "x" * (MAX_FILE_BYTES - len(head) - 10) + "}\n"


def too_deep() -> str:
    """Past the depth limit by far (once a SIGSEGV): refused, quickly."""
    return TEMPLATE + "  junk: " + "[" * 50_000 + "]" * 50_000 + "\n"


def too_many_nodes() -> str:
    """Just past the node limit: refused at the node that passes it, quickly."""
    return flow_ints().replace("0]\n", "0," * 100 + "0]\n")


CASES: dict[str, Callable[[], str]] = {
    "devices": devices, "attributes": attributes, "flow-ints": flow_ints,
    "broken-docs": broken_documents, "aliases": aliases, "big-string": big_string,
    "too-deep": too_deep, "too-many-nodes": too_many_nodes}


def run(path: Path) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MiB) of a fresh child, exit code, last output line."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run([sys.executable, '-m', 'iotc_apply', 'validate', sys.argv[1]], "
            "capture_output=True, text=True); w = time.perf_counter() - t; "
            "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; "
            "last = (p.stdout + p.stderr).strip().splitlines()[-1]; "
            "print(w, r, p.returncode, last, sep='\\t')")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout.strip().split("\t")
    return float(out[0]), float(out[1]), int(out[2]), out[3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"limits: {MAX_FILE_BYTES:,} bytes, {MAX_NODES:,} nodes, depth {MAX_DEPTH}; "
          f"bound {BOUND_S} s and {BOUND_MB} MB per file")
    over = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CASES.items():
            path = Path(tmp) / f"{name}.yaml"
            text = make()
            path.write_text(text)
            runs = [run(path) for _ in range(args.repeat)]
            walls = [r[0] for r in runs]
            rss = max(r[1] for r in runs)
            worst = max(walls)
            over += worst > BOUND_S or rss > BOUND_MB
            print(f"{name:<15} {len(text) / 1e6:6.2f} MB  exit {runs[0][2]}  wall min "
                  f"{min(walls):.2f} s median {statistics.median(walls):.2f} s max {worst:.2f}"
                  f" s ({worst / BOUND_S:.2f} of bound)  peak {rss:.0f} MiB "
                  f"({rss / BOUND_MB:.2f} of bound)  | {runs[0][3][:70]}")
    print("all cases within bounds" if not over else f"{over} case(s) over a bound")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
