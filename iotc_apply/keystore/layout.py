"""What a key store holds on disk and how it is read: names, files, refusals.

`<keys-dir>/<cpId>-<env>/<duid>/key.pem` (0600) or `key.pem.age` (sealed), `cert.pem`,
`iotcDeviceConfig.json`, optionally `attestation` and `unverified`; folders 0700. Nothing
found on disk is trusted: symlinks, loose modes, FIFOs and garbage are refused with the
path and what to do. May import: `safefile`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..safefile import NotRegular, read_small


class _Deferred:
    """A module imported when first used. `cryptography.x509` alone takes ~0.1 s to import,
    and a plan whose certificates' expiries are all cached needs none of it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        """The module is looked up once, then kept (an apply of 1,000 devices called
        import_module 13,000 times through here); its names are read live from it each
        time, so whatever replaces one there (a test's monkeypatch) is what is used."""
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import oid
else:
    x509 = _Deferred("cryptography.x509")
    hashes = _Deferred("cryptography.hazmat.primitives.hashes")
    serialization = _Deferred("cryptography.hazmat.primitives.serialization")
    ec = _Deferred("cryptography.hazmat.primitives.asymmetric.ec")
    oid = _Deferred("cryptography.x509.oid")

ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VALIDITY_DAYS = 3650


class KeyStoreError(Exception):
    """The key store holds something it must not trust; the message says what and where."""


def account_folder(cpid: str, env: str) -> str:
    """The folder name of one account's keys: `<cpId>-<env>`."""
    name = f"{cpid}-{env}"
    if not ACCOUNT_NAME.fullmatch(name):
        raise KeyStoreError(f"account {name!r} cannot name a key folder")
    return name


SEALED = "key.pem.age"
ATTESTATION = "attestation"
# A device whose create could not be verified (the service shows no registered certificate):
# the marker stays until `keys verify` can check it or the device is deleted.
UNVERIFIED = "unverified"
# A new device folder while it is written (`keystore.commit`). No DUID has a `~` (the
# schemas allow [A-Za-z0-9_.-]), so no device folder's name starts so.
STAGING = ".staging~"
# Each kept certificate's expiry, by file identity, so a plan need not parse them all.
EXPIRY_CACHE = ".expiry-cache.json"


def kept_cert_text(path: Path) -> str | None:
    """A kept certificate (parsed, never a symlink); None when there is none."""
    if not path.exists() and not path.is_symlink():
        return None
    refuse_symlink(path)
    text = read_text(path)
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a PEM certificate") from exc
    return text


def device_folders(folder: Path) -> set[str]:
    """Names of the real (not symlinked) sub-folders of `folder`, but for folders being
    staged: one directory scan, the entry types come with it."""
    if not folder.is_dir() or folder.is_symlink():
        return set()
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_dir(follow_symlinks=False) and
                not e.name.startswith(STAGING)}


def key_folders(folder: Path) -> set[str]:
    """Names of the real (not symlinked) sub-folders of `folder` that hold a key, plain or
    sealed. One directory scan (entry types come with it) and one stat per device."""
    if not folder.is_dir() or folder.is_symlink():
        return set()
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_dir(follow_symlinks=False) and
                not e.name.startswith(STAGING) and (
            os.path.isfile(os.path.join(e.path, "key.pem")) or
            os.path.isfile(os.path.join(e.path, SEALED)))}


def config_account(folder: Path) -> str | None:
    """`<cpid>-<env>` from a device folder's iotcDeviceConfig.json, or None."""
    path = folder / "iotcDeviceConfig.json"
    try:
        if path.is_symlink():
            return None
        config = json.loads(path.read_text(encoding="utf-8"))
        return account_folder(str(config["cpid"]), str(config["env"]))
    except (OSError, ValueError, KeyError, TypeError, KeyStoreError):
        return None


def read_bytes(path: Path) -> bytes:
    """A key store file: small, regular, not followed (`safefile.read_small`)."""
    try:
        return read_small(path)
    except NotRegular as exc:
        raise KeyStoreError(f"{path} is {exc.strerror}") from None


def read_text(path: Path) -> str:
    try:
        return read_bytes(path).decode("ascii")
    except UnicodeDecodeError:
        raise KeyStoreError(f"{path} is not a PEM certificate") from None


def refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise KeyStoreError(f"{path} is a symlink; the key store follows none")


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An existing key, only if it is a private, regular, readable EC key."""
    refuse_symlink(path)
    mode = path.lstat().st_mode
    if mode & 0o077:
        raise KeyStoreError(f"{path} is readable by others (mode {mode & 0o777:o}); "
                            f"run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(read_bytes(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a readable private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{path} is not an EC private key")
    return key


def kept_certificate(path: Path, key: ec.EllipticCurvePrivateKey) -> str | None:
    """The kept certificate when it belongs to `key`; None when there is none yet."""
    if not path.exists() and not path.is_symlink():
        return None
    refuse_symlink(path)
    text = read_text(path)
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a PEM certificate") from exc
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise KeyStoreError(f"{path} does not belong to the key beside it; the device's "
                            "key and certificate must be restored together")
    return text
