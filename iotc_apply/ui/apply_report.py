"""Apply on a terminal: a progress bar while it runs, a result per change when it ends.

Big fleets get a grouped summary (counts per kind, action and outcome) and every failure
listed, instead of thousands of "done" lines.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..apply.executor import BREAKER_FAILURES, ApplyResult, Hooks, Status
from ..apply.graph import Step
from ..plan import Action, PlanIssue
from .plan_text import folded

GROUP_ABOVE = 40
REQUEST = re.compile(r"^(?:GET|POST|PUT|DELETE|PATCH) /\S*: ")
STATUS_STYLE = {Status.DONE: "ok", Status.FAILED: "diag.error", Status.SKIPPED: "diag.warning",
                Status.NOT_STARTED: "muted", Status.UNVERIFIED: "diag.warning",
                Status.HELD: "diag.warning"}


class ProgressHooks(Hooks):
    """A rich progress bar with counts on a terminal; without one (CI logs), a plain line at
    every tenth of a big apply, so a long run is never silent."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(TextColumn("Applying"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failed]} failed"),
                                 TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True,
                                 disable=not console.is_terminal)
        self.task = self.progress.add_task("apply", total=0, failed=0)
        self.total = self.done = self.failed = 0
        self._lock = threading.Lock()

    def started(self, total: int) -> None:
        self.total = total
        self.progress.update(self.task, total=total)
        self.progress.start()

    def finished(self, step: Step, status: Status, message: str) -> None:
        with self._lock:
            self.done += 1
            self.failed += status is not Status.DONE
            self.progress.update(self.task, advance=1, failed=self.failed)
            tenth = max(1, self.total // 10)
            if not self.console.is_terminal and self.total >= 100 and self.done % tenth == 0:
                self.console.print(f"applied {self.done}/{self.total} ({self.failed} failed "
                                   "or skipped)")

    def close(self) -> None:
        self.progress.stop()


DONE = {Action.CREATE: "created", Action.UPDATE: "updated", Action.REPLACE: "replaced",
        Action.DELETE: "deleted", Action.DEPRECATE: "deprecated",
        Action.DEACTIVATE: "deactivated", Action.PUSH: "pushed"}


def summary(result: ApplyResult, destroy: bool = False) -> str:
    """`60 created, 5 updated, 1 failed`: what was done, by verb, then what was not."""
    done = [r for r in result.results if r.status is Status.DONE]
    if destroy:
        parts = [f"{len(done)} removed"] if done else []
    else:
        counts = Counter(r.action for r in done)
        parts = [f"{counts[a]} {verb}" for a, verb in DONE.items() if counts[a]]
    parts += [f"{result.count(s)} {s.value}" for s in Status
              if s is not Status.DONE and result.count(s)]
    return ", ".join(parts)


def render(console: Console, result: ApplyResult, destroy: bool = False,
           keys_written: int = 0, keys_dir: str = "", accept_unverified: bool = False) -> None:
    if len(result.results) > GROUP_ABOVE:
        _grouped(console, result)
    else:
        for r in result.results:
            text = f"{r.action.symbol} {r.address}"
            detail = f": {r.message}" if r.message else ""
            console.print(f"[{STATUS_STYLE[r.status]}]{escape(f'{text:<34} {r.status.value}')}"
                          f"[/]{escape(detail)}")
    console.print()
    if result.interrupted:
        console.print("[diag.warning]Interrupted:[/] no new changes were started; the ones in "
                      "flight finished. Run apply again to finish the job.")
    if result.tripped:
        console.print(f"[diag.error]Stopped:[/] the service stopped answering "
                      f"({BREAKER_FAILURES} requests in a row failed at the connection or "
                      f"with 5xx; last: {escape(result.tripped)}); "
                      f"{result.count(Status.NOT_STARTED)} change(s) not attempted. Run "
                      "apply again once it answers: it converges without duplicates.")
    if result.outside_window:
        console.print(escape(f"Outside the change window, as asked: {result.outside_window}"))
    held = result.count(Status.HELD)
    if held:
        console.print(f"[diag.warning]Held:[/] {held} change(s) wait for a change window "
                      "(Project.spec.windows); run apply again inside one, or pass "
                      "--outside-window REASON.")
    verb = "Destroy" if destroy else "Apply"
    verdict = f"{verb} complete" if result.ok_with(accept_unverified) else \
        f"{verb} incomplete"
    if result.unconfirmed:
        verdict = f"{verb} not confirmed"
    keys = f"; {keys_written} private key(s) written to {keys_dir}, back them up" \
        if keys_written else ""
    console.print(escape(f"{verdict}: {summary(result, destroy) or 'nothing to do'}{keys} "
                         f"({result.seconds:.1f} s)."))
    if result.unconfirmed:
        console.print(escape(f"The service accepted these changes, but reading the account "
                             f"back failed ({result.unconfirmed}); run 'iotc plan' to see "
                             "what took effect, then apply again: it converges without "
                             "duplicates."))
    elif result.count(Status.UNVERIFIED) and not accept_unverified:
        console.print(f"{result.count(Status.UNVERIFIED)} change(s) are in the account but "
                      "could not be verified as this run's (listed by 'iotc keys verify' "
                      "until checked); --accept-unverified takes them as done.")
    elif not result.ok_with(accept_unverified) and not result.interrupted and \
            not result.tripped and result.count(Status.HELD) < len(result.results) - \
            result.count(Status.DONE):
        console.print("Fix what failed and run apply again: it converges without duplicates.")


def as_json(result: ApplyResult, accept_unverified: bool = False) -> dict[str, object]:
    """The result for tools (`apply --report FILE`): every change with its own outcome."""
    return {"ok": result.ok_with(accept_unverified), "interrupted": result.interrupted,
            "unconfirmed": result.unconfirmed or None, "stopped": result.tripped or None,
            "outside_window": result.outside_window or None,
            "seconds": round(result.seconds, 3),
            "counts": {s.value: result.count(s) for s in Status},
            "results": [{"address": str(r.address), "action": r.action.value,
                         "status": r.status.value, "message": r.message}
                        for r in result.results]}


def _grouped(console: Console, result: ApplyResult) -> None:
    groups = Counter((r.address.kind.value, r.action.value, r.status) for r in result.results)
    for (kind, action, status), n in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1],
                                                                             g[0][2].value)):
        console.print(f"[{STATUS_STYLE[status]}]{n:>6} {kind} {action}: {status.value}[/]")
    for status in (Status.FAILED, Status.UNVERIFIED):
        # one line per cause (848 identical "connection refused" lines once): messages that
        # differ only in the request that met the cause fold together
        issues = [PlanIssue(status.value, r.message, str(r.address)) for r in result.results
                  if r.status is status]
        for line in folded(issues, status.value, "'iotc plan'",
                           cause=lambda message: REQUEST.sub("", message)):
            console.print(f"[{STATUS_STYLE[status]}]{status.value}:[/] {escape(line)}")
