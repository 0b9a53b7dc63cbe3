"""Group commit: new device folders made durable many at a time, then put in place.

A new device's folder is written whole under a staging name beside its place (key,
certificate, config, attestation; no fsync each). `GroupCommit.place` then makes it durable
and renames it into place, sharing the work with every folder staged meanwhile: the first
caller to find no round running leads one (one filesystem sync for the whole batch, the
renames, one fsync of the account folder) while the others wait for its answer. A key is
thus on disk before `place` returns, and the device is registered only after that.
A process killed at any point leaves at worst a staging folder (no device holds its key:
registering comes after) that a later run removes. May import: `safefile`, `layout`.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path

from ..safefile import sync_directory, sync_filesystem, sync_tree
from .layout import STAGING

STALE_AFTER = 3600.0  # seconds: a staging folder older than this belongs to a dead run

# rename(2) of a folder onto a folder that is not empty, or onto a file or symlink: another
# run placed the device first, or something is there the kept-key path must judge
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)


class _Entry:
    __slots__ = ("staged", "final", "done", "placed", "error")

    def __init__(self, staged: Path, final: Path) -> None:
        self.staged, self.final = staged, final
        self.done = self.placed = False
        self.error: OSError | None = None


class GroupCommit:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cond = threading.Condition()
        self._pending: list[_Entry] = []
        self._leading = False
        self.rounds = 0  # filesystem syncs made (the benchmark reports folders per round)

    def place(self, staged: Path, final: Path) -> bool:
        """Make `staged` durable and rename it to `final`; False (and `staged` left for the
        caller) when `final` was there first. Blocks until its round is done."""
        entry = _Entry(staged, final)
        with self._cond:
            self._pending.append(entry)
            while self._leading and not entry.done:
                self._cond.wait()
            if not entry.done:  # no round running: lead one for all who wait
                self._leading = True
                batch, self._pending = self._pending, []
        if not entry.done:
            try:
                self._commit(batch)
            except BaseException as exc:  # a bug or an interrupt: nobody takes it as placed
                for waiting in batch:
                    if waiting.error is None:
                        waiting.error = OSError(errno.EIO, f"group commit failed: {exc!r}")
                raise
            finally:
                with self._cond:
                    for waiting in batch:
                        waiting.done = True
                    self._leading = False
                    self._cond.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.placed

    def _commit(self, batch: list[_Entry]) -> None:
        """One round: sync what the batch wrote (one syncfs, or fsyncs where there is
        none), rename each folder into place, sync the account folder once."""
        try:
            if not sync_filesystem(self.root):
                for entry in batch:
                    sync_tree(entry.staged)
        except OSError as exc:
            for entry in batch:
                entry.error = exc
            return
        self.rounds += 1
        for entry in batch:
            try:
                os.rename(entry.staged, entry.final)
                entry.placed = True
            except OSError as exc:
                if exc.errno not in _TAKEN:
                    entry.error = exc
        if any(entry.placed for entry in batch):
            try:
                sync_directory(self.root)
            except OSError as exc:
                for entry in batch:
                    if entry.placed:
                        entry.error = exc


def sweep_staging(root: Path, now: float | None = None) -> int:
    """Remove staging folders older than STALE_AFTER (left by a killed run; their keys were
    never registered); returns how many. A younger one may be another run's, still busy."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(STAGING) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER:
                continue
            shutil.rmtree(entry.path)
            removed += 1
        except OSError:
            continue
    return removed
