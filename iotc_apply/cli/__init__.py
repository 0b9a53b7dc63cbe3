"""Command line: argparse -> typed options -> one module per verb -> exit code.

`root` builds the parser from the verb modules (each with `register` and `run`), `args`
holds the argument groups several verbs share, `context` the environment (read once) and
the collaborators made from it; the workflows themselves are in `operations`, below.
Exit codes: 0 success, 1 error (bad input, API failure), 2 changes present
(`--detailed-exitcode`), 130 interrupted. Errors are one line on stderr, never a traceback.
May import: any room of iotc_apply (the CLI wires them together; only it starts the
emulator).
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..client.errors import ApiError
from ..client.redact import redact_text
from ..ui.console import error, make_console
from .context import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Environment,
    Interrupted,
    Invocation,
    UsageError,
)
from .root import build_parser, expand_emulator_flag

if TYPE_CHECKING:
    from ..ui.console import Console

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "UsageError",
           "build_parser", "main", "tune_gc"]


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    tune_gc()
    args = _parser().parse_args(expand_emulator_flag(sys.argv[1:] if argv is None else argv))
    db = getattr(args, "emulator", None)  # only the commands that talk to an account have it
    inv = Invocation(Environment.current(), Path(db) if db else None, started)
    run: Callable[..., int] = args.run
    try:
        if inv.emulator_db is not None and inv.emulator_db.is_dir():
            raise UsageError(f"--emulator={db} is a folder; name a file for the emulator's "
                             f"state, e.g. --emulator={inv.emulator_db / 'e.db'}")
        return run(args, inv)
    except _refusals() as exc:
        err = make_console(sys.stderr)  # made when needed: rich is ~40 ms of imports
        _manifest_diagnostics(err, exc)
        if str(exc):
            error(err, redact_text(str(exc)))
        return EXIT_ERROR
    except Interrupted:
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        error(make_console(sys.stderr), "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if inv.env.get("IOTC_DEBUG"):
            raise
        error(make_console(sys.stderr), redact_text(
            f"internal error: {type(exc).__name__}: {exc} (IOTC_DEBUG=1 shows the traceback; "
            "please report it)"))
        return EXIT_ERROR


@functools.cache
def tune_gc() -> None:
    """Fewer cyclic collections for a process that builds a large acyclic heap and exits.

    A plan of 100,000 devices spent 27 % of its CPU in the collector (validate 29 %): ten
    full collections, each walking the whole heap, freed fewer than 900 objects, because
    manifests, snapshots and plans are trees, not cycles. The modules imported so far are
    frozen (never walked again), and a young collection waits for 50,000 allocations instead
    of 700; full ones stay as rare as Python makes them (heap grown by a quarter).
    Reference counting still frees everything acyclic at once, so memory stays flat."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process: parsing leaves it as it was, and a build costs
    ~6 ms (argparse looks up a translation of every help string), which a process that runs
    the CLI a thousand times (the tests) paid a thousand times."""
    return build_parser()


def _refusals() -> tuple[type[Exception], ...]:
    """What ends a command with one line and exit 1: usage mistakes, refused workflows,
    API errors, a key store that refuses."""
    from ..keystore import KeyStoreError
    from ..operations import Refused

    return (ApiError, UsageError, Refused, KeyStoreError)


def _manifest_diagnostics(err: Console, exc: Exception) -> None:
    """Manifests that did not load: their diagnostics and summary, before any one line."""
    from ..operations import ManifestsInvalid

    if isinstance(exc, ManifestsInvalid):
        from ..ui import diagnostics

        diagnostics.failed_load(err, exc.loaded)


if __name__ == "__main__":
    sys.exit(main())
