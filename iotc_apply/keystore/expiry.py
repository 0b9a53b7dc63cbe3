"""Which kept certificates expire soon, for plan warnings, without parsing them all.

Every plan asks this of every kept key, and parsing 10,000 certificates costs about 0.2 s,
so each certificate's expiry is remembered in EXPIRY_CACHE under the file's identity (inode,
size, mtime): a certificate replaced or edited is parsed again. May import: `safefile`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..safefile import read_small, write_private
from .layout import EXPIRY_CACHE, x509

if TYPE_CHECKING:
    from .store import KeyStore


def expiring(store: KeyStore, within_days: int,
             duids: frozenset[str] | None = None) -> frozenset[str]:
    """DUIDs whose kept certificate expires within the days given (for plan warnings);
    `duids`, when the caller listed them already, saves a second scan.

    Every plan asks this of every kept key, and parsing 10,000 certificates costs about
    0.2 s, so each certificate's expiry is remembered in EXPIRY_CACHE under the file's
    identity (inode, size, mtime): a certificate replaced or edited is parsed again."""
    cutoff = (datetime.datetime.now(datetime.UTC)
              + datetime.timedelta(days=within_days)).timestamp()
    cached = _cache(store)
    fresh: dict[str, list[int]] = {}
    out = set()
    try:
        root = os.open(store.root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return frozenset()  # no account folder: no kept certificate
    stat = os.stat
    try:
        for duid in store.duids() if duids is None else duids:
            try:
                # relative to the folder, opened once: a path lookup of two parts, not five
                st = stat(f"{duid}/cert.pem", dir_fd=root)
                seen = cached.get(duid)
                if type(seen) is list and len(seen) == 4 and seen[0] == st.st_ino and \
                        seen[2] == st.st_mtime_ns and seen[1] == st.st_size and \
                        type(seen[3]) is int:
                    fresh[duid] = seen
                    not_after = seen[3]
                else:
                    not_after = _not_after(store.root / duid / "cert.pem")
                    fresh[duid] = [st.st_ino, st.st_size, st.st_mtime_ns, not_after]
            except (OSError, ValueError):
                continue  # apply refuses an unreadable certificate with its own message
            if not_after <= cutoff:
                out.add(duid)
    finally:
        os.close(root)
    if fresh != cached:
        _keep(store, fresh)
    return frozenset(out)


def _not_after(path: Path) -> int:
    """When a kept certificate expires, read from it; never a symlink, FIFO or device (a
    committed store is untrusted)."""
    cert = x509.load_pem_x509_certificate(read_small(path))
    return int(cert.not_valid_after_utc.timestamp())


def _cache(store: KeyStore) -> dict[str, list[int]]:
    path = store.root / EXPIRY_CACHE
    try:
        if path.is_symlink():
            return {}
        data = json.loads(path.read_bytes())
        entries = data["certificates"] if data.get("version") == 1 else {}
        return entries if isinstance(entries, dict) else {}  # entries checked when used
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}  # no cache, or not one this version wrote: parse every certificate


def _keep(store: KeyStore, entries: dict[str, list[int]]) -> None:
    if not store.root.is_dir():
        return
    data = json.dumps({"version": 1, "certificates": entries}, separators=(",", ":"))
    with contextlib.suppress(OSError):  # a read-only store plans, only slower
        write_private(store.root / EXPIRY_CACHE, data.encode(), sync_dir=False)
