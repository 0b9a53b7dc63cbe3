"""Careful file operations shared by the key store, the token cache, plan files and locks.

Atomic and durable writes (a temp file created with O_EXCL in the target's folder, fsync,
rename, fsync of the folder), exclusive creation that never replaces what exists and never
follows a symlink, and the run lock that keeps two applies off one key store.
May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def write_private(path: Path, data: bytes, sync_dir: bool = True, mode: int = 0o600,
                  make_parent: bool = True) -> None:
    """Write a file atomically and durably (temp file, fsync, rename, fsync dir).

    The temp file is made with O_EXCL beside the target (mkstemp), so a planted file or
    symlink there is never followed; the rename replaces a symlink at `path` rather than
    writing through it. `sync_dir=False` leaves the folder's fsync to a caller who writes
    several files into one folder and syncs it once (`sync_directory`); `make_parent=False`
    spares the folder checks of a caller that has just made the folder (the key store: two
    system calls of the ~20 a new device's files cost).
    """
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if mode != 0o600:  # mkstemp makes the file 0600
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        sync_directory(path.parent)


class NotRegular(OSError):
    """A file that must be a small regular file and is not (a symlink, FIFO, device, or
    too large)."""


def read_small(path: Path | str, limit: int = 64 * 1024) -> bytes:
    """A small regular file's bytes, opened without following a symlink and without
    blocking (a FIFO would hang the read, `/dev/zero` never end it); anything else, or a
    file over `limit` bytes, is NotRegular. For files in a committed key store."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(errno.ELOOP, "a symlink; the key store follows none",
                             str(path)) from None
        raise
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit:
            raise NotRegular(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
        data = f.read(limit + 1)
    if len(data) > limit:
        raise NotRegular(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
    return data


class OutsideRoot(ValueError):
    """A relative path that would lead out of the folder it must stay in."""


def inside(root: Path, relative: str) -> Path:
    """`root / relative`, its folders made, for a path built from untrusted names.

    Refused (OutsideRoot) when `relative` is absolute, has a `..` part, or passes through a
    symlink, and checked again after resolution, so nothing written there lands outside
    `root`. The last part may be a symlink: `write_private` replaces it, never follows it.
    """
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or any(p in ("..", ".") for p in parts):
        raise OutsideRoot(f"{relative!r} is not a path inside {root}")
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise OutsideRoot(f"{relative!r}: {folder} is a symlink; nothing is written "
                              "through one")
        folder.mkdir(mode=0o755, exist_ok=True)
    if not folder.resolve().is_relative_to(root.resolve()):
        raise OutsideRoot(f"{relative!r} resolves outside {root}")
    return folder / parts[-1]


def create_exclusive(path: Path, data: bytes, sync_dir: bool = True) -> bool:
    """Create a 0600 file only if nothing (not even a dangling symlink) is at `path`.

    True when this call created it; False when something was already there, which is then
    left exactly as it was. All or nothing: the content goes to a temp file (O_EXCL, in the
    same folder) that is fsynced and then hard-linked to `path`, which fails if anything is
    there, so a process killed half-way never leaves a truncated key that a later run would
    take for a kept one. Durable before returning (file fsync, and the folder's unless
    `sync_dir=False` leaves it to a caller who syncs the folder once for several files).
    """
    if os.path.lexists(path):
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if sync_dir:
        sync_directory(path.parent)
    return True


def create_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create a file that must not exist yet (O_EXCL, no symlink followed) and write it,
    with no fsync: for a folder nobody else uses yet, made durable as a whole by its caller
    (`sync_filesystem`) before it is renamed into place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """fsync every file of a folder (not recursing) and the folder itself: what one
    `sync_filesystem` does for a whole batch, where the platform has no syncfs."""
    with os.scandir(folder) as entries:
        names = [e.path for e in entries if e.is_file(follow_symlinks=False)]
    for name in names:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    sync_directory(folder)


_SYNCFS: list[object] = []  # [the libc function, or None where there is none], once looked up


def sync_filesystem(folder: Path) -> bool:
    """Make everything written so far to the filesystem holding `folder` durable, with one
    syncfs(2): a batch of new key folders costs one call where fsyncs cost four a device.
    False where the platform has no syncfs (the caller then fsyncs what it wrote)."""
    if not _SYNCFS:
        _SYNCFS.append(_libc_syncfs())
    syncfs = _SYNCFS[0]
    if syncfs is None:
        return False
    import ctypes

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:  # type: ignore[operator]
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(folder))
    finally:
        os.close(fd)
    return True


def _libc_syncfs() -> object:
    """libc's syncfs (Linux), or None. ctypes releases the GIL for the call, so the other
    workers go on while the disk syncs."""
    if os.uname().sysname != "Linux":
        return None
    try:
        import ctypes

        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes, syncfs.restype = [ctypes.c_int], ctypes.c_int
    return syncfs


def sync_directory(folder: Path) -> None:
    """Make the renames and creations in a folder durable."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LockHeld(Exception):
    """Another run holds the lock; the message says who and since when."""


@contextlib.contextmanager
def run_lock(path: Path, timeout: float = 0.0, command: str = "apply") -> \
        Iterator[str | None]:
    """Hold an exclusive lock on `path` for the block; yields a warning or None. `command`
    (apply, destroy) is recorded so a refused run can say which command holds it.

    flock is released by the kernel when its holder dies, so a lock is never stale in the
    kernel's eyes; the file's text (pid, host, time) only names the holder. A file naming
    a pid that no longer runs on this host is reported as taken over.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        _acquire(fd, path, timeout)
        warning = _stale_note(os.pread(fd, 512, 0).decode("utf-8", "replace"))
        stamp = datetime.datetime.now().strftime("%H:%M")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {stamp} {command}\n".encode(), 0)
        try:
            yield warning
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise LockHeld(_holder(os.pread(fd, 512, 0).decode("utf-8", "replace"), path))
        time.sleep(0.1)


def _holder(text: str, path: Path) -> str:
    parts = text.split()
    command = parts[3] if len(parts) == 4 and parts[3] in ("apply", "destroy") else "apply"
    if len(parts) in (3, 4):
        pid, host, since = parts[:3]
        return (f"another {command} holds the lock since {since} by pid {pid} on host {host} "
                f"({path}); wait for it, or pass --lock-timeout SECONDS to queue")
    return f"another {command} holds the lock {path}; pass --lock-timeout SECONDS to queue"


def _stale_note(text: str) -> str | None:
    parts = text.split()
    # the file is text anyone with the keys dir could have written: a pid is ASCII digits
    # ('²' passes `isdigit` and fails `int`) that fit a pid_t
    if len(parts) not in (3, 4) or parts[1] != socket.gethostname() or \
            not (parts[0].isascii() and parts[0].isdigit()) or not 0 < int(parts[0]) < 2**31:
        return None
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return f"took over the lock of pid {parts[0]}, which no longer runs (since {parts[2]})"
    except PermissionError:
        return None
    return None


def md5_and_size(path: Path) -> tuple[str, int]:
    """A file's MD5 (hex) and size, read in 1 MiB chunks: the service tags upgrade files
    with their MD5, and both the manifest loader and the executor compare against it."""
    import hashlib

    digest = hashlib.md5()  # noqa: S324 (the service's file tag, not a security digest)
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
