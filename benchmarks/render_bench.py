"""Benchmark: rendering a plan of N device creates as text (and markdown), as `iotc plan`
prints it to a pipe.

Issue 28's figure: a 100,000-create text plan renders in under 1.5 s. The plan is built in
memory (the planner's own output shape: a create per device with its `after` view), then
rendered to a console on a pipe-like buffer, as `iotc plan > file` does; the plan's build is
not timed. Prints the time per run, the min and median, and microseconds per create line.

    python benchmarks/render_bench.py --creates 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from iotc_apply.model import Address, Kind
from iotc_apply.plan.model import Account, Action, Change, Plan, Reason
from iotc_apply.ui import plan_markdown, plan_text
from iotc_apply.ui.console import make_console


def build(creates: int) -> Plan:
    changes = tuple(Change(
        Address(Kind.DEVICE, f"lt-{i:06}"), Action.CREATE, Reason.NEW, None,
        {"duid": f"lt-{i:06}", "template": "sensor01", "entity": "Plant-A",
         "displayName": f"Sensor {i}", "active": True},
        depends_on=(Address(Kind.TEMPLATE, "sensor01"),)) for i in range(1, creates + 1))
    return Plan(Account("aws", "poc", "CPID", False), changes, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    plan = build(args.creates)
    text_runs, md_runs = [], []
    for _ in range(args.repeat):
        out = io.StringIO()
        started = time.perf_counter()
        plan_text.render(make_console(out), plan)
        text_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        markdown = plan_markdown.render(plan)
        md_runs.append(time.perf_counter() - started)
    lines = out.getvalue().count("\n")
    for name, runs in (("text", text_runs), ("markdown", md_runs)):
        print(f"{name}: {args.creates:,} creates: " + ", ".join(f"{r:.2f}" for r in runs)
              + f" s; min {min(runs):.2f} s, median {statistics.median(runs):.2f} s")
    print(f"text: {lines:,} lines, {min(text_runs) / args.creates * 1e6:.1f} us per create "
          f"(bound 1.5 s: ratio {min(text_runs) / 1.5:.2f} min, "
          f"{statistics.median(text_runs) / 1.5:.2f} median); markdown "
          f"{len(markdown):,} characters")


if __name__ == "__main__":
    main()
