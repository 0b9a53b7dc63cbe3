"""Custody of kept keys: age recipients and identities, listing, sealing a plain store,
reading one device's key back (checked against its certificate), unsealing keys into a
private folder for provisioning, and verifying a store against the account.
May import: `safefile`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..safefile import create_exclusive, sync_directory
from .layout import (
    SEALED,
    KeyStoreError,
    ec,
    kept_cert_text,
    kept_certificate,
    load_key,
    refuse_symlink,
    serialization,
    x509,
)
from .store import KeyStore


def recipients(texts: list[str] | tuple[str, ...]) -> tuple[Any, ...]:
    """age recipients (`age1...`), parsed; KeyStoreError naming the first bad one."""
    if not texts:
        return ()
    from pyrage import RecipientError, x25519

    out = []
    for text in texts:
        try:
            out.append(x25519.Recipient.from_str(text.strip()))
        except (RecipientError, ValueError) as exc:
            raise KeyStoreError(f"{text.strip()[:20]!r} is not an age recipient (age1...): "
                                f"{exc}") from None
    return tuple(out)


@dataclass(frozen=True)
class KeptKey:
    duid: str
    form: str  # "plain" or "sealed"
    subject: str
    not_after: str


def kept(store: KeyStore) -> list[KeptKey]:
    """Every device folder of the store with its key's form and certificate facts."""
    out = []
    for duid in sorted(store.duids()):
        folder = store.folder(duid)
        form = "sealed" if (folder / SEALED).is_file() else "plain"
        text = kept_cert_text(folder / "cert.pem")
        if text is None:
            out.append(KeptKey(duid, form, "(no cert.pem)", "-"))
            continue
        cert = x509.load_pem_x509_certificate(text.encode())
        out.append(KeptKey(duid, form, cert.subject.rfc4514_string(),
                           cert.not_valid_after_utc.strftime("%Y-%m-%d")))
    return out


def identities(path: Path) -> list[Any]:
    """The age identities (`AGE-SECRET-KEY-1...` lines) of an identity file."""
    from pyrage import IdentityError, x25519

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"{path}: cannot read the identity file ({exc})") from None
    found = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(line))
        except (IdentityError, ValueError):
            raise KeyStoreError(f"{path}:{number}: not an age identity (AGE-SECRET-KEY-1...)") \
                from None
    if not found:
        raise KeyStoreError(f"{path}: holds no age identity")
    return found


def private_key(store: KeyStore, duid: str, keys: list[Any] | None) -> bytes:
    """A device's private key (PEM), checked against its kept certificate. Sealed keys need
    `keys` (identities); a wrong identity, a damaged file or a mismatch is KeyStoreError."""
    import pyrage

    folder = store.folder(duid)
    refuse_symlink(folder)
    sealed, plain = folder / SEALED, folder / "key.pem"
    if sealed.is_file() and not sealed.is_symlink():
        if not keys:
            raise KeyStoreError(f"{duid}: the key is sealed; give --identity FILE")
        try:
            pem = pyrage.decrypt(sealed.read_bytes(), keys)
        except pyrage.DecryptError as exc:
            reason = "no identity given matches it" if "No matching keys" in str(exc) else \
                "the file is damaged"
            raise KeyStoreError(f"{sealed}: cannot unseal: {reason}") from None
    elif plain.is_file():
        load_key(plain)  # refuses loose permissions and garbage
        pem = plain.read_bytes()
    else:
        raise KeyStoreError(f"{duid}: no key in {store.root}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyStoreError(f"{duid}: the unsealed key is not a private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            kept_certificate(folder / "cert.pem", key) is None:
        raise KeyStoreError(f"{duid}: no certificate beside the key")
    return pem


def seal(store: KeyStore, duid: str) -> bool:
    """Convert one plain key to the sealed form: the sealed file is durable before the
    plain one goes. False when it was sealed already."""
    import pyrage

    folder = store.folder(duid)
    plain, sealed = folder / "key.pem", folder / SEALED
    if not plain.is_file():
        return False
    key = load_key(plain)
    kept_certificate(folder / "cert.pem", key)
    pem = plain.read_bytes()
    if not create_exclusive(sealed, pyrage.encrypt(pem, list(store.sealed_to))):
        raise KeyStoreError(f"{sealed} exists beside a plain key.pem; keep one of them")
    os.unlink(plain)
    sync_directory(folder)
    return True


def unseal_into(store: KeyStore, duids: list[str], identity: list[Any], out: Path) -> int:
    """Write the named devices' keys (and certificates, configs) into `out`, for the person
    who provisions hardware: only into a folder nobody else can read, never over a file, and
    all or nothing (what was written is removed again if anything fails)."""
    import contextlib

    from ..safefile import read_small

    check_private_folder(out)
    pems = {duid: private_key(store, duid, identity) for duid in duids}
    made: list[Path] = []
    try:
        for duid, pem in pems.items():
            folder = out / duid
            if not folder.exists():
                folder.mkdir(mode=0o700)
                made.append(folder)
            for name, data in (("key.pem", pem),
                               ("cert.pem", read_small(store.folder(duid) / "cert.pem")),
                               ("iotcDeviceConfig.json",
                                read_small(store.folder(duid) / "iotcDeviceConfig.json"))):
                if not create_exclusive(folder / name, data):
                    raise KeyStoreError(f"{folder / name} exists; nothing is overwritten, "
                                        "nothing was written")
                made.append(folder / name)
    except BaseException:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        raise
    return len(pems)


def check_private_folder(out: Path) -> None:
    """A folder to unseal into: it exists and nobody else can read it."""
    import stat

    if not out.is_dir():
        raise KeyStoreError(f"--out {out}: not a folder (create it with mode 700)")
    mode = stat.S_IMODE(out.stat().st_mode)
    if mode & 0o077:
        raise KeyStoreError(f"--out {out} is readable by others (mode {mode:o}); run: "
                            f"chmod 700 {out}")
