"""Moving a key store of the flat layout (`<keys-dir>/<duid>/`) into per-account folders,
reading each device's account from its `iotcDeviceConfig.json`. May import: `safefile`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..safefile import sync_directory
from .layout import config_account, key_folders, refuse_symlink

if TYPE_CHECKING:
    from .store import KeyStore


def migrate(store: KeyStore) -> tuple[dict[str, int], list[str]]:
    """Move device folders of the flat layout into their account's folder.

    Returns how many moved per account folder, and one line per folder left in place
    (no readable config naming an account, or the same device already moved).
    Run only under the run lock: a rename is atomic, but two runs deciding at once are
    not.
    """
    moved: dict[str, int] = {}
    left: list[str] = []
    for name, owner in sorted(flat(store).items()):
        source = store.base / name
        if owner is None:
            left.append(f"{source}: a key folder of the flat layout whose "
                        "iotcDeviceConfig.json names no account; move it into "
                        f"{store.base}/<cpId>-<env>/ yourself")
            continue
        target = store.base / owner / name
        if target.exists() or target.is_symlink():
            left.append(f"{source}: not moved, {target} exists already")
            continue
        target.parent.mkdir(mode=0o700, exist_ok=True)
        refuse_symlink(target.parent)
        os.rename(source, target)
        moved[owner] = moved.get(owner, 0) + 1
    if moved:
        sync_directory(store.base)
        for owner in moved:
            sync_directory(store.base / owner)
    return moved, left


def flat(store: KeyStore) -> dict[str, str | None]:
    """Device folders directly in the keys dir (the flat layout) and the account each
    one's config names (None when it names none readably)."""
    return {name: config_account(store.base / name) for name in key_folders(store.base)}
