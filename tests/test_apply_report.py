"""What apply prints: progress lines in CI logs, per-change results, grouped summaries."""

from __future__ import annotations

import io

from rich.console import Console

from iotc_apply.apply.executor import ApplyResult, ChangeResult, Status
from iotc_apply.apply.graph import Step
from iotc_apply.model import Address, Kind
from iotc_apply.plan import Action
from iotc_apply.ui import apply_report
from iotc_apply.ui.console import THEME


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, color_system=None, theme=THEME), out


def test_a_long_apply_without_a_terminal_reports_every_tenth() -> None:
    con, out = console()
    hooks = apply_report.ProgressHooks(con)
    hooks.started(200)
    for i in range(200):
        status = Status.FAILED if i == 5 else Status.DONE
        hooks.finished(Step(Address(Kind.DEVICE, f"d{i}"), "create"), status, "")
    hooks.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "applied 20/200 (1 failed or skipped)"
    assert lines[-1] == "applied 200/200 (1 failed or skipped)"


def result(n: int, failed: int = 0) -> ApplyResult:
    rows = tuple(ChangeResult(Address(Kind.DEVICE, f"d{i:03d}"), Action.CREATE,
                              Status.FAILED if i < failed else Status.DONE,
                              "POST /Device: HTTP 409: Unique Id already exists." if i < failed
                              else "") for i in range(n))
    return ApplyResult(rows, False, 1.25)


def test_small_results_are_listed_one_per_change() -> None:
    con, out = console()
    apply_report.render(con, result(2, failed=1))
    assert out.getvalue().splitlines() == [
        "+ device/d000                      failed: POST /Device: HTTP 409: Unique Id already "
        "exists.",
        "+ device/d001                      done",
        "",
        "Apply incomplete: 1 created, 1 failed (1.2 s).",
        "Fix what failed and run apply again: it converges without duplicates."]


def test_big_results_are_grouped_with_every_failure_listed() -> None:
    con, out = console()
    apply_report.render(con, result(500, failed=2))
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["   498 device create: done", "     2 device create: failed"]
    assert lines[2] == "failed: device/d000: POST /Device: HTTP 409: Unique Id already exists."
    assert lines[-2] == "Apply incomplete: 498 created, 2 failed (1.2 s)."


def test_the_verdict_says_what_was_done_and_where_the_keys_went() -> None:
    results = tuple(ChangeResult(Address(Kind.DEVICE, f"d{i}"), action, Status.DONE)
                    for i, action in enumerate([Action.CREATE] * 3 + [Action.UPDATE]))
    out = io.StringIO()
    apply_report.render(Console(file=out, width=200), ApplyResult(results, False, 0.5),
                        keys_written=3, keys_dir=".iotc/keys/CPID-poc/")
    assert out.getvalue().splitlines()[-1] == (
        "Apply complete: 3 created, 1 updated; 3 private key(s) written to "
        ".iotc/keys/CPID-poc/, back them up (0.5 s).")
    out = io.StringIO()
    apply_report.render(Console(file=out, width=200), ApplyResult(results, False, 0.5),
                        destroy=True)
    assert out.getvalue().splitlines()[-1] == "Destroy complete: 4 removed (0.5 s)."
