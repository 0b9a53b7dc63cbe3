"""What apply prints: progress lines in CI logs, per-change results, grouped summaries."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from iotc_apply.apply.executor import ApplyResult, ChangeResult, Status
from iotc_apply.apply.graph import Step
from iotc_apply.model import Address, Kind
from iotc_apply.plan import Action
from iotc_apply.ui import apply_report
from iotc_apply.ui.console import theme


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, color_system=None, theme=theme()), out


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


def test_golden_folded_apply_report_after_the_breaker_tripped() -> None:
    """848 identical "connection refused" lines once: now failures fold by message, and
    the breaker's one line says how many changes were not attempted."""
    from pathlib import Path

    refused = "POST /Device: cannot connect to http://127.0.0.1:9: connection refused; is " \
              "the service up?"
    rows = tuple(ChangeResult(Address(Kind.DEVICE, f"d{i:03d}"), Action.CREATE,
                              Status.FAILED if i < 12 else
                              Status.DONE if i < 40 else Status.NOT_STARTED,
                              refused if i < 12 else "") for i in range(100))
    out = io.StringIO()
    con = Console(file=out, width=300, color_system=None, theme=theme())
    apply_report.render(con, ApplyResult(rows, False, 3.2, tripped=refused))
    golden = Path(__file__).parent / "golden" / "apply-folded.txt"
    import os
    if os.environ.get("IOTC_UPDATE_GOLDEN"):
        golden.write_text(out.getvalue())
    assert out.getvalue() == golden.read_text()
    lines = out.getvalue().splitlines()
    assert sum("connection refused" in line for line in lines) == 2  # the fold, the stop
    assert any(line.startswith("Stopped: the service stopped answering") and
               "60 change(s) not attempted" in line for line in lines)


def test_the_breaker_stops_an_apply_whose_service_answers_5xx_to_everything(
        work, server, capsys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from iotc_apply.emulator.knobs import FaultRule, Knobs

    from .support import iotc

    server.emulator.traffic.configure(Knobs(faults=[FaultRule.parse("POST /Device=1.0:500")]))
    assert iotc("apply", "m", "--auto-approve") == 1
    out = capsys.readouterr().out
    assert out.count("Stopped: the service stopped answering") == 1
    not_started = int(out.split(" change(s) not attempted")[0].rsplit(" ", 1)[1])
    assert not_started >= 30
    assert server.emulator.traffic.counts["POST /Device"] < 60 * 3  # 3 tries each before


@pytest.mark.own_server
def test_the_breaker_stops_an_apply_when_the_service_goes_away(
        work, server, capsys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The emulator is stopped after its fifth device create: the apply stops scheduling,
    prints one Stopped line and a folded failure, and exits 1; once it is back (a new
    server on the same state) a re-run converges."""
    import threading
    import time

    from iotc_apply.emulator.knobs import Knobs

    from .support import iotc

    server.emulator.traffic.configure(Knobs(latency_ms=20))

    def stop_after_five() -> None:
        deadline = time.monotonic() + 60
        while server.emulator.traffic.counts["POST /Device"] < 5 and \
                time.monotonic() < deadline:
            time.sleep(0.005)
        server.stop()

    watcher = threading.Thread(target=stop_after_five)
    watcher.start()
    code = iotc("apply", "m", "--auto-approve", "--parallelism", "4")
    watcher.join()
    out = capsys.readouterr().out
    assert code == 1
    assert out.count("Stopped: the service stopped answering") == 1, out[-3000:]
    assert sum("connection refused" in line for line in out.splitlines()) <= 3, out[-3000:]
