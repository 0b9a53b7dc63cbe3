"""Many manifest files read on every core: contiguous runs of files, one forked copy of
this process for each run but the first, their results pickled back in file order.

Reading is CPU in PyYAML's Python objects, one core's worth whatever the loader (PyYAML's
own safe load of 100,000 Device documents takes 5.4 s here; iotc's reading 5.3 s), so a
large tree of files goes faster only on more cores. Forking is used only where it is safe
and pays: Linux (fork without exec is unsafe with macOS's system libraries; Windows has
none), a process with no other thread (a thread holding a lock at the fork leaves it held
for ever in the child: plan and apply start their account reads before the manifests, so
they read in one process), more than one usable core, and enough bytes to beat the forks
and the pickling (about 8 % of the reading). A worker only computes and writes its pipe;
one that fails for any reason (killed, out of memory) costs time, not results: its files
are read again here. Results are the same values whichever way they were made. May import:
nothing of iotc_apply.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

MIN_BYTES = 512 * 1024  # a run smaller than this costs more to fork and pickle than it saves
MAX_WORKERS = 8


def map_runs(work: Callable[[range], T], sizes: Sequence[int]) -> list[T]:
    """`work` over contiguous runs of the indices of `sizes` (bytes per item), in order;
    every run but the first in a forked worker when that is safe and pays."""
    runs = split(sizes, workers(sum(sizes), len(sizes)))
    children: list[tuple[int, int | None, range]] = []  # (pid, pipe, run); pid 0: read here
    try:
        for run in runs[1:]:
            # Ctrl-C held back until the worker is on the list the `finally` reaps (and in
            # the worker until its own `try`, or it would go on as a second copy)
            held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                children.append((*_fork(work, run, held), run))
            except OSError:  # no process to be had: this one reads the run
                children.append((0, None, run))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        results = [work(runs[0])]
        for i, (pid, pipe, run) in enumerate(children):
            done, value = False, None
            if pid:
                children[i] = (pid, None, run)  # the pipe is _collect's to close
                done, value = _collect(pid, pipe)  # type: ignore[arg-type]
            results.append(value if done else work(run))  # type: ignore[arg-type]
        return results
    finally:
        for pid, pipe, _ in children:  # interrupted: no worker outlives its reader
            _reap(pid, pipe)


def workers(total: int, items: int) -> int:
    """How many processes should share the reading of `items` files of `total` bytes."""
    if sys.platform != "linux" or items < 2 or total < 2 * MIN_BYTES or \
            threading.active_count() > 1:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), items, MAX_WORKERS, total // MIN_BYTES))


def split(sizes: Sequence[int], parts: int) -> list[range]:
    """Contiguous, non-empty runs of indices, about equal in bytes, `parts` at most."""
    total, runs, start, seen = sum(sizes), [], 0, 0
    for i, size in enumerate(sizes):
        seen += size
        if len(runs) < parts - 1 and seen * parts >= total * (len(runs) + 1) and \
                i + 1 < len(sizes):
            runs.append(range(start, i + 1))
            start = i + 1
    runs.append(range(start, len(sizes)))
    return runs


def _fork(work: Callable[[range], T], run: range, held: set[signal.Signals]) -> tuple[int, int]:
    """A worker computing `work(run)` and writing it, pickled, to a pipe: (pid, read end).
    Called with SIGINT blocked; the worker restores `held`, the caller's mask, itself."""
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # the worker: compute, write, leave without running any exit handler
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            os.close(read)
            data = pickle.dumps(work(run), protocol=pickle.HIGHEST_PROTOCOL)
            with open(write, "wb") as pipe:
                pipe.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _collect(pid: int, fd: int) -> tuple[bool, object]:
    """A worker's result: (True, value), or (False, None) when it did not finish."""
    with open(fd, "rb") as pipe:
        data = pipe.read()  # before waiting: a worker blocks until its pipe is drained
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return False, None
    try:
        return True, pickle.loads(data)  # noqa: S301 - our own fork's answer, through our pipe
    except Exception:  # a truncated answer: read the files here
        return False, None


def _reap(pid: int, fd: int | None) -> None:
    """Stop a worker nobody will read: its pipe closed, it killed and waited for, unless
    it was waited for already (then its number may be another process's by now)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    if not pid:
        return
    try:
        ended, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if not ended:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
