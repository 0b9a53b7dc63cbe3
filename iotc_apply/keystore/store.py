"""The key store: one folder per device with its private key, certificate and SDK config.

One folder per account (`<keys-dir>/<cpId>-<env>/`), so staging and production never share
a key nor a certificate whose CN names the other's cpId.
A new device's folder is written whole under a staging name and renamed into place once
durable, many folders to one filesystem sync (`keystore.commit`); a file added to a folder
that exists is written atomically and durably (temp file, fsync, rename, fsync of the
folder). Either way, *before* the device is registered. An existing key is reused, never
overwritten: a key that was lost cannot be recovered, and a device whose key is lost must be
replaced. A folder in place is never replaced and `key.pem` is created with O_EXCL: when two
runs race, the second uses the first one's key. Sealed keys exist on disk only encrypted to
age recipients.

Custody: anyone can encrypt to a public age recipient, so a pull request could add a device
with a `key.pem.age` and `cert.pem` of its own. With an attestation key
(IOTC_KEYS_ATTEST_KEY, else IOTC_PLAN_KEY: CI secrets), every key apply makes gets an
`attestation` file beside it, an HMAC over the certificate's DER, the DUID and the account,
and a kept key is used for a device not yet registered only when its attestation is right.
The keys dir and account folder must not be writable by group or others.
Private keys never leave this package except as files. May import: `defaults`, `safefile`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..defaults import DEFAULT_KEYS_DIR
from ..safefile import create_exclusive, create_new, read_small, sync_directory, write_private
from .certs import Issuer
from .commit import STAGING, GroupCommit, sweep_staging
from .expiry import expiring
from .layout import (
    ATTESTATION,
    SEALED,
    UNVERIFIED,
    KeyStoreError,
    device_folders,
    ec,
    kept_cert_text,
    kept_certificate,
    key_folders,
    load_key,
    refuse_symlink,
    serialization,
    x509,
)
from .migrate import flat, migrate


@dataclass(frozen=True)
class DeviceIdentity:
    """What registering a device needs: its certificate (public) and where its key is."""

    duid: str
    certificate_pem: str
    key_path: Path
    reused: bool


class KeyStore:
    def __init__(self, base: Path = DEFAULT_KEYS_DIR, account: str | None = None,
                 sealed_to: tuple[Any, ...] = (), issuer: Issuer | None = None,
                 attest_key: bytes | None = None) -> None:
        """`base` is the keys dir; `account` (`account_folder`) the folder inside it that
        holds this account's devices (None: `base` itself, for tools and tests);
        `sealed_to` the age recipients new keys are sealed to (none: plain keys);
        `attest_key` the secret attestations are made and checked with (None: none)."""
        self.base = base
        self.account = account
        self.sealed_to = sealed_to
        self.attest_key = attest_key
        self.issuer = issuer or Issuer()
        self.root = base / account if account else base
        self._lock = threading.Lock()
        self._ready = False
        self._commit = GroupCommit(self.root)
        self.written = 0  # keys this store created (for the apply report)

    def folder(self, duid: str) -> Path:
        return self.root / duid

    def has_key(self, duid: str) -> bool:
        folder = self.folder(duid)
        return (folder / "key.pem").is_file() or (folder / SEALED).is_file()

    def folders(self) -> frozenset[str]:
        """DUIDs with a device folder: one directory listing, no look inside (the plan's
        warnings for 100,000 kept keys; a stat per folder cost 0.4 s). A folder is made
        whole, by renaming a finished one into place, so one without a key is someone's
        hand-made damage, and apply's `ensure` meets it with its own refusal."""
        found = device_folders(self.root)
        if self.account:
            found |= {name for name, owner in flat(self).items() if owner == self.account}
        return frozenset(found)

    def duids(self) -> frozenset[str]:
        """DUIDs with a stored key, plain or sealed (one directory listing and a look for the
        key in each folder: export, keys verify, seal and unseal; the plan's warnings take
        `folders`), including folders of the flat layout that name this account and are not
        moved yet."""
        found = key_folders(self.root)
        if self.account:
            found |= {name for name, owner in flat(self).items() if owner == self.account}
        return frozenset(found)

    def expiring(self, within_days: int, duids: frozenset[str] | None = None) -> frozenset[str]:
        """DUIDs whose kept certificate expires within the days given (`keystore.expiry`)."""
        return expiring(self, within_days, duids)

    def migrate(self) -> tuple[dict[str, int], list[str]]:
        """Move device folders of the flat layout into their account's folder
        (`keystore.migrate`); run only under the run lock."""
        return migrate(self)

    # -- custody -------------------------------------------------------------------------

    def check_private(self) -> None:
        """The keys dir and the account folder: writable by their owner only (anyone else
        could swap a key in)."""
        for folder in {self.base, self.root}:
            if not folder.is_dir():
                continue
            mode = folder.lstat().st_mode & 0o777
            if mode & 0o022:
                raise KeyStoreError(f"{folder} is writable by group or others (mode {mode:o});"
                                    f" run: chmod 700 {folder}")

    def attestation(self, duid: str, cert_pem: str) -> str:
        """HMAC-SHA256 over the certificate's DER, the DUID and the account: only a holder
        of the attestation key can make it, and it binds the key's certificate to this
        device of this account."""
        assert self.attest_key is not None
        der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(
            serialization.Encoding.DER)
        message = der + b"\0" + duid.encode() + b"\0" + (self.account or "").encode()
        return "hmac-sha256:" + hmac.new(self.attest_key, message, hashlib.sha256).hexdigest()

    def _attest(self, duid: str, cert_pem: str) -> None:
        if self.attest_key is not None:
            write_private(self.folder(duid) / ATTESTATION,
                          (self.attestation(duid, cert_pem) + "\n").encode(), sync_dir=False,
                          make_parent=False)

    def attested(self, duid: str, cert_pem: str | None) -> bool | None:
        """Whether a kept certificate carries a right attestation; None when no attestation
        key is set (nothing can be checked)."""
        if self.attest_key is None:
            return None
        if cert_pem is None:
            return False
        try:
            given = read_small(self.folder(duid) / ATTESTATION).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given, self.attestation(duid, cert_pem))

    def require_attested(self, duid: str, cert_pem: str | None) -> None:
        """Refuse a kept key (or certificate) that is about to be registered for the first
        time when apply cannot prove it made it."""
        if self.attested(duid, cert_pem) is False:
            raise KeyStoreError(unattested_message(duid, self.folder(duid)))

    def unattested(self, duids: frozenset[str] | set[str]) -> frozenset[str]:
        """Of the kept keys of `duids` (devices not registered yet), those whose attestation
        is missing or wrong; empty when no attestation key is set."""
        if self.attest_key is None:
            return frozenset()
        out = set()
        for duid in duids:
            try:
                cert = kept_cert_text(self.folder(duid) / "cert.pem")
            except KeyStoreError:
                cert = None
            if not self.attested(duid, cert):
                out.add(duid)
        return frozenset(out)

    def attest_all(self) -> int:
        """`iotc keys attest`: attest every kept certificate (once, for a store made before
        attestations, by someone who trusts what it holds now)."""
        count = 0
        for duid in sorted(self.duids()):
            cert = kept_cert_text(self.folder(duid) / "cert.pem")
            if cert is not None:
                self._attest(duid, cert)
                sync_directory(self.folder(duid))
                count += 1
        return count

    def mark_unverified(self, duid: str, reason: str) -> None:
        write_private(self.folder(duid) / UNVERIFIED, (reason + "\n").encode(),
                      make_parent=False)

    def clear_unverified(self, duid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder(duid) / UNVERIFIED).unlink()

    def unverified(self) -> dict[str, str]:
        """Devices whose registration apply could not verify, and why."""
        out = {}
        for duid in sorted(self.duids()):
            marker = self.folder(duid) / UNVERIFIED
            if marker.is_file() and not marker.is_symlink():
                try:
                    out[duid] = read_small(marker).decode("utf-8", "replace").strip()
                except OSError:
                    out[duid] = "(unreadable marker)"
        return out

    def forms(self) -> tuple[int, int]:
        """How many kept keys are plain and how many sealed."""
        plain = sealed = 0
        for duid in self.duids():
            folder = self.folder(duid)
            if (folder / SEALED).is_file():
                sealed += 1
            elif (folder / "key.pem").is_file():
                plain += 1
        return plain, sealed

    def discard(self, identity: DeviceIdentity) -> None:
        """Remove a key this run made when its device turned out to be registered already
        with another certificate: a kept key must be one a device can use."""
        if identity.reused:
            return
        with self._lock:
            self.written -= 1
        for name in ("iotcDeviceConfig.json", "cert.pem", "key.pem", SEALED, ATTESTATION,
                     UNVERIFIED):
            with contextlib.suppress(FileNotFoundError):
                (identity.key_path.parent / name).unlink()
        with contextlib.suppress(OSError):
            identity.key_path.parent.rmdir()

    def ensure(self, duid: str, common_name: str, device_config: dict[str, object],
               registered: bool = False) -> DeviceIdentity:
        """The device's certificate, generating and storing a key first if it has none.
        A kept key is used for a device not `registered` yet only when attested."""
        if not duid or duid in (".", "..") or any(c in duid for c in "/\\\0\n\r"):
            raise KeyStoreError(f"{duid!r} cannot name a key folder")
        with self._lock:
            if not self._ready:  # once per store: two syscalls less per device
                self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
                refuse_symlink(self.base)
                self.root.mkdir(exist_ok=True, mode=0o700)
                refuse_symlink(self.root)
                self.check_private()
                sweep_staging(self.root)
                self._ready = True
        folder = self.folder(duid)
        if not os.path.lexists(folder):
            made = self._create(duid, folder, common_name, device_config)
            if made is not None:
                return made  # else another run placed the folder first: its key is kept
        key_path, cert_path = folder / "key.pem", folder / "cert.pem"
        if not folder.is_symlink():
            folder.mkdir(mode=0o700, exist_ok=True)
        refuse_symlink(folder)
        os.chmod(folder, 0o700, follow_symlinks=False)
        if self.sealed_to and not key_path.exists() and not key_path.is_symlink():
            return self._ensure_sealed(duid, folder, common_name, device_config, registered)
        key = ec.generate_private_key(ec.SECP256R1())
        created = create_exclusive(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()), sync_dir=False)
        if not created:
            key = load_key(key_path)
            kept = kept_certificate(cert_path, key)
            if not registered:
                self.require_attested(duid, kept)
            if kept is not None:
                return DeviceIdentity(duid, kept, key_path, reused=True)
        cert = self._certify(duid, key, common_name, device_config, cert_path)
        sync_directory(folder)  # one fsync makes the key and both renames durable
        if created:
            with self._lock:
                self.written += 1
        return DeviceIdentity(duid, cert, key_path, reused=not created)

    def _create(self, duid: str, folder: Path, common_name: str,
                device_config: dict[str, object]) -> DeviceIdentity | None:
        """A new device's folder, written whole under a staging name and renamed into place
        once durable (`keystore.commit`: one filesystem sync covers every folder staged
        meanwhile, where one folder cost four fsyncs). None when another run placed the
        folder first; the caller then takes the kept-key path, which uses that run's key.
        Sealed: the key is on disk only encrypted, in this folder as anywhere."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.issuer.certificate(key, common_name)
        secret = key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption())
        name = "key.pem"
        if self.sealed_to:
            import pyrage

            name, secret = SEALED, pyrage.encrypt(secret, list(self.sealed_to))
        del key
        staged = Path(tempfile.mkdtemp(dir=self.root, prefix=f"{STAGING}{duid}."))  # 0700
        try:
            create_new(staged / name, secret)
            create_new(staged / "cert.pem", cert.encode())
            create_new(staged / "iotcDeviceConfig.json",
                       (json.dumps(device_config, indent=4) + "\n").encode())
            if self.attest_key is not None:
                create_new(staged / ATTESTATION,
                           (self.attestation(duid, cert) + "\n").encode())
            placed = self._commit.place(staged, folder)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if not placed:
            shutil.rmtree(staged, ignore_errors=True)
            return None
        with self._lock:
            self.written += 1
        return DeviceIdentity(duid, cert, folder / name, reused=False)

    def _certify(self, duid: str, key: ec.EllipticCurvePrivateKey, common_name: str,
                 device_config: dict[str, object], cert_path: Path) -> str:
        """The key's certificate and the SDK config, written beside it (not yet durable:
        the caller syncs the folder once), and attested when an attestation key is set."""
        cert = self.issuer.certificate(key, common_name)
        write_private(cert_path.parent / "iotcDeviceConfig.json",
                      (json.dumps(device_config, indent=4) + "\n").encode(), sync_dir=False,
                      make_parent=False)
        write_private(cert_path, cert.encode(), sync_dir=False, make_parent=False)
        self._attest(duid, cert)
        return cert

    def _ensure_sealed(self, duid: str, folder: Path, common_name: str,
                       device_config: dict[str, object], registered: bool) -> DeviceIdentity:
        """Sealed form: the key exists on disk only encrypted to the recipients.

        Order matters: the certificate (made in memory from the new key) is written first,
        then the sealed key with O_EXCL, then one folder fsync, all before the device is
        registered. A crash between the two leaves a certificate whose key was never kept;
        the next run replaces it, and no device can hold it (registration comes later).
        A kept sealed key cannot be read back here (no identity), so its certificate is
        trusted as kept; `iotc keys verify --identity` checks the pair.
        """
        import pyrage

        sealed, cert_path = folder / SEALED, folder / "cert.pem"
        if sealed.exists() or sealed.is_symlink():
            refuse_symlink(sealed)
            kept = kept_cert_text(cert_path)
            if kept is None:
                raise KeyStoreError(f"{sealed} has no cert.pem beside it; restore the "
                                    "device's certificate (it cannot be rebuilt without "
                                    "unsealing the key)")
            if not registered:
                self.require_attested(duid, kept)
            return DeviceIdentity(duid, kept, sealed, reused=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._certify(duid, key, common_name, device_config, cert_path)
        plain = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption())
        if not create_exclusive(sealed, pyrage.encrypt(plain, list(self.sealed_to)),
                                sync_dir=False):
            raise KeyStoreError(f"{sealed} appeared while this run wrote it; run again")
        del plain, key
        sync_directory(folder)
        with self._lock:
            self.written += 1
        return DeviceIdentity(duid, cert, sealed, reused=False)


def unattested_message(duid: str, folder: Path) -> str:
    return (f"device {duid}: its kept key and certificate were added outside apply (no valid "
            f"attestation in {folder}); a key must be one apply made: remove the folder (the "
            "device is not registered, so nothing is lost), or attest a store you trust with "
            "'iotc keys attest'")
