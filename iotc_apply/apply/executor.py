"""The executor: walk the step graph with a bounded worker pool.

Steps whose prerequisites are done run in parallel (`parallelism` at a time); a failed step
skips only the steps that depend on it, transitively; independent work goes on. A stop
request (Ctrl-C) starts nothing new, lets in-flight calls finish, and the result says what was
done. Every change gets a result. No terminal I/O: progress goes through `Hooks`.
A circuit breaker stops scheduling when the service is gone: BREAKER_FAILURES steps in a
row that failed at the connection (refused, DNS, TLS, timeout) or with a 5xx after their
retries, within BREAKER_WINDOW seconds, start nothing new; in-flight steps finish, the rest
are reported not started (once 848 identical "connection refused" lines).
May import: `client`, `model`, `plan`."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from ..client.errors import ApiError, StatusError, TransportError
from ..model import Address
from ..plan import Action, Plan
from .actions import Actions, StepFailed, StepUnverified
from .graph import Graph, Step, build

BREAKER_FAILURES = 10
BREAKER_WINDOW = 60.0  # seconds


class Status(StrEnum):
    DONE = "done"
    # in the account, but not verified as this run's (a device found after a lost answer
    # whose registered certificate the service does not show): never reported as done
    UNVERIFIED = "unverified"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_STARTED = "not started"
    # destructive, outside every change window (or needing such a change): not attempted
    HELD = "held"


@dataclass(frozen=True)
class ChangeResult:
    address: Address
    action: Action
    status: Status
    message: str = ""


@dataclass(frozen=True)
class ApplyResult:
    results: tuple[ChangeResult, ...]
    interrupted: bool
    seconds: float
    # Why the account could not be read back after the changes (empty: it was, or nobody
    # tried): what the service accepted is then reported, but not as confirmed.
    unconfirmed: str = ""
    # Why the circuit breaker stopped the run (the last outage error), or empty.
    tripped: str = ""
    # --outside-window REASON: why destructive changes ran outside the change windows
    outside_window: str = ""

    @property
    def ok(self) -> bool:
        return self.ok_with(accept_unverified=False)

    def ok_with(self, accept_unverified: bool) -> bool:
        """Everything done (`--accept-unverified`: or in the account but unverified)."""
        fine = (Status.DONE, Status.UNVERIFIED) if accept_unverified else (Status.DONE,)
        return not self.interrupted and not self.unconfirmed and not self.tripped and \
            all(r.status in fine for r in self.results)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    def confirmed(self, still_planned: dict[Address, Action]) -> ApplyResult:
        """The result after reading the account back: a change reported done whose address a
        fresh plan still has to change did not take effect, whatever the service answered.
        """
        def check(r: ChangeResult) -> ChangeResult:
            if r.status is not Status.DONE or r.address not in still_planned:
                return r
            if r.action is Action.DEACTIVATE and still_planned[r.address] is Action.DELETE:
                return r  # inactive now: the delete is the second phase's, for a later apply
            return ChangeResult(r.address, r.action, Status.FAILED,
                                "the service accepted it, but the account does not show it "
                                f"(a fresh plan still has {still_planned[r.address].value})")
        return dataclasses.replace(self, results=tuple(check(r) for r in self.results))

    def not_confirmed(self, reason: str) -> ApplyResult:
        """The result when reading the account back failed: nothing is known to be done."""
        return dataclasses.replace(self, unconfirmed=reason)

    def with_held(self, held: tuple[ChangeResult, ...], reason: str) -> ApplyResult:
        """The result with the changes a change window held, in address order."""
        results = tuple(sorted(self.results + held, key=lambda r: r.address))
        return dataclasses.replace(self, results=results, outside_window=reason)


class Hooks:
    """Progress callbacks; the default does nothing (the core prints nothing)."""

    def started(self, total: int) -> None:
        """The walk begins with `total` steps."""

    def finished(self, step: Step, status: Status, message: str) -> None:
        """A step ended (done, failed, or skipped because something it needs failed)."""


def execute(plan: Plan, actions: Actions, parallelism: int = 10, hooks: Hooks | None = None,
            stop: threading.Event | None = None) -> ApplyResult:
    """Apply every change of the plan and return a result for each. The scheduling lives in
    `_Walk.run`, in one place, so it can be read top to bottom."""
    hooks = hooks or Hooks()
    stop = stop or threading.Event()
    started = time.monotonic()
    walk = _Walk(build(plan), actions, hooks, stop)
    walk.run(max(1, parallelism))
    return ApplyResult(walk.results(), stop.is_set(), time.monotonic() - started,
                       tripped=walk.tripped)


class _Walk:
    def __init__(self, graph: Graph, actions: Actions, hooks: Hooks,
                 stop: threading.Event) -> None:
        self.graph = graph
        self.actions = actions
        self.hooks = hooks
        self.stop = stop
        self.status: dict[Step, Status] = {}
        self.messages: dict[Step, str] = {}
        self.waiting = {s: set(graph.after[s]) for s in graph.steps}
        self.dependents = graph.dependents()
        self.outage: list[float] = []  # when each failure of the current outage run came
        self.tripped = ""

    def run(self, parallelism: int) -> None:
        self.hooks.started(len(self.graph.steps))
        ready = deque(sorted(s for s, w in self.waiting.items() if not w))
        running: dict[Future[str | None], Step] = {}
        # finished steps queue up here, so taking the next costs the same at any
        # parallelism (`wait(FIRST_COMPLETED)` hooked a waiter onto every running future on
        # every turn: O(p) per step)
        finished: queue.SimpleQueue[Future[str | None]] = queue.SimpleQueue()
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            try:
                while ready or running:
                    while ready and len(running) < parallelism and not self.stop.is_set() \
                            and not self.tripped:
                        step = ready.popleft()
                        future = pool.submit(self._one, step)
                        running[future] = step
                        future.add_done_callback(finished.put)
                    if not running:
                        break
                    future = finished.get()
                    ready.extend(self._settle(running.pop(future), future))
            except KeyboardInterrupt:
                self.stop.set()
                for future, step in running.items():
                    self._settle(step, future)

    def _one(self, step: Step) -> str | None:
        return self.actions.run(step, self.graph.changes[step.address])

    def _failed(self, step: Step, message: str) -> None:
        self._finish(step, Status.FAILED, message)
        self._skip_dependents(step)

    def _settle(self, step: Step, future: Future[str | None]) -> list[Step]:
        """Record a finished step; return the steps it made ready."""
        try:
            said = future.result()
            self._finish(step, Status.DONE, said or "")
            self.outage.clear()
        except StepUnverified as exc:  # the object exists: what needs it may go on
            self._finish(step, Status.UNVERIFIED, str(exc))
            self.outage.clear()
        except (ApiError, StepFailed, OSError) as exc:
            self._failed(step, str(exc))
            self._count_outage(exc)
            return []
        except Exception as exc:  # a bug; the rest of the fleet still gets its turn
            self._failed(step, f"internal error: {type(exc).__name__}: {exc}")
            return []
        freed = []
        for dependent in sorted(self.dependents[step]):
            self.waiting[dependent].discard(step)
            if not self.waiting[dependent] and dependent not in self.status:
                freed.append(dependent)
        return freed

    def _count_outage(self, exc: Exception) -> None:
        """A failure at the connection or a 5xx (after the client's retries) extends the
        current outage; any other result ends it. Enough of them, fast enough, trip the
        breaker."""
        if not (isinstance(exc, TransportError) or
                isinstance(exc, StatusError) and exc.status >= 500):
            self.outage.clear()
            return
        now = time.monotonic()
        self.outage.append(now)
        recent = [t for t in self.outage if now - t <= BREAKER_WINDOW]
        if len(recent) >= BREAKER_FAILURES and not self.tripped:
            self.tripped = str(exc)

    def _finish(self, step: Step, status: Status, message: str) -> None:
        self.status[step] = status
        self.messages[step] = message
        self.hooks.finished(step, status, message)

    def _skip_dependents(self, failed: Step) -> None:
        todo = list(self.dependents[failed])
        while todo:
            step = todo.pop()
            if step not in self.status:
                self._finish(step, Status.SKIPPED, f"needs '{failed}', which failed")
                todo += self.dependents[step]

    def results(self) -> tuple[ChangeResult, ...]:
        by_address: dict[Address, list[Step]] = {}
        for step in self.graph.steps:
            by_address.setdefault(step.address, []).append(step)
        out = []
        for address, change in sorted(self.graph.changes.items()):
            steps = by_address[address]
            states = [self.status.get(s, Status.NOT_STARTED) for s in steps]
            worst = next((st for st in (Status.FAILED, Status.SKIPPED, Status.NOT_STARTED,
                                        Status.UNVERIFIED) if st in states), Status.DONE)
            message = next((self.messages[s] for s in steps if self.messages.get(s)), "")
            if worst is Status.DONE and len(steps) == 2:
                message = "deleted and re-created"
            out.append(ChangeResult(address, change.action, worst, message))
        return tuple(out)
