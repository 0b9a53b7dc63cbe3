"""The key store: one folder per device with its private key, certificate and SDK config.

`<keys-dir>/<cpId>-<env>/<duid>/key.pem` (0600), `cert.pem`, `iotcDeviceConfig.json`;
folders 0700. One folder per account, so staging and production never share a key nor a
certificate whose CN names the other's cpId; stores of the earlier flat layout
(`<keys-dir>/<duid>/`) are moved into their account's folder by `migrate`, which reads the
account from each device's `iotcDeviceConfig.json`.
Every file is written atomically and durably (temp file, fsync, rename, fsync of the folder)
*before* the device is registered, and an existing key is reused, never overwritten: a key
that was lost cannot be recovered, and a device whose key is lost must be replaced.
The store trusts nothing it finds on disk: a symlink anywhere in it (the keys dir, a device
folder, a file) is refused, a key readable by group or others is refused with the chmod to
run, and a key whose certificate does not match it is refused. `key.pem` is created with
O_EXCL and never replaced: when two runs race, the second uses the first one's key.

Custody: anyone can encrypt to a public age recipient, so a pull request could add a device
with a `key.pem.age` and `cert.pem` of its own. With an attestation key
(IOTC_KEYS_ATTEST_KEY, else IOTC_PLAN_KEY: CI secrets), every key apply makes gets an
`attestation` file beside it, an HMAC over the certificate's DER, the DUID and the account,
and a kept key is used for a device not yet registered only when its attestation is right.
The keys dir and account folder must not be writable by group or others.
Private keys never leave this module except as files. Imports `safefile` only.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import importlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..defaults import DEFAULT_KEYS_DIR
from ..safefile import NotRegular, create_exclusive, read_small, sync_directory, write_private


class _Deferred:
    """A module imported when first used. `cryptography.x509` alone takes ~0.1 s to import,
    and a plan whose certificates' expiries are all cached needs none of it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


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


@dataclass(frozen=True)
class DeviceIdentity:
    """What registering a device needs: its certificate (public) and where its key is."""

    duid: str
    certificate_pem: str
    key_path: Path
    reused: bool


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
# Each kept certificate's expiry, by file identity, so a plan need not parse them all.
EXPIRY_CACHE = ".expiry-cache.json"


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
        self.written = 0  # keys this store created (for the apply report)

    def folder(self, duid: str) -> Path:
        return self.root / duid

    def has_key(self, duid: str) -> bool:
        folder = self.folder(duid)
        return (folder / "key.pem").is_file() or (folder / SEALED).is_file()

    def duids(self) -> frozenset[str]:
        """DUIDs with a stored key (one directory listing, for the plan's warnings), including
        folders of the flat layout that name this account and are not moved yet."""
        found = _key_folders(self.root)
        if self.account:
            found |= {name for name, owner in self._flat().items() if owner == self.account}
        return frozenset(found)

    def expiring(self, within_days: int, duids: frozenset[str] | None = None) -> frozenset[str]:
        """DUIDs whose kept certificate expires within the days given (for plan warnings);
        `duids`, when the caller listed them already, saves a second scan.

        Every plan asks this of every kept key, and parsing 10,000 certificates costs about
        0.2 s, so each certificate's expiry is remembered in EXPIRY_CACHE under the file's
        identity (inode, size, mtime): a certificate replaced or edited is parsed again."""
        cutoff = (datetime.datetime.now(datetime.UTC)
                  + datetime.timedelta(days=within_days)).timestamp()
        cached = self._expiry_cache()
        fresh: dict[str, list[int]] = {}
        out = set()
        root = str(self.root)
        for duid in self.duids() if duids is None else duids:
            path = f"{root}/{duid}/cert.pem"
            try:
                st = os.stat(path)
                seen = cached.get(duid)
                if type(seen) is list and len(seen) == 4 and type(seen[3]) is int and \
                        seen[:3] == [st.st_ino, st.st_size, st.st_mtime_ns]:
                    not_after = seen[3]
                else:
                    # never a symlink, FIFO or device (a committed store is untrusted)
                    cert = x509.load_pem_x509_certificate(read_small(path))
                    not_after = int(cert.not_valid_after_utc.timestamp())
            except (OSError, ValueError):
                continue  # apply refuses an unreadable certificate with its own message
            fresh[duid] = [st.st_ino, st.st_size, st.st_mtime_ns, not_after]
            if not_after <= cutoff:
                out.add(duid)
        if fresh != cached:
            self._keep_expiry_cache(fresh)
        return frozenset(out)

    def _expiry_cache(self) -> dict[str, list[int]]:
        path = self.root / EXPIRY_CACHE
        try:
            if path.is_symlink():
                return {}
            data = json.loads(path.read_bytes())
            entries = data["certificates"] if data.get("version") == 1 else {}
            return entries if isinstance(entries, dict) else {}  # entries checked when used
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            return {}  # no cache, or not one this version wrote: parse every certificate

    def _keep_expiry_cache(self, entries: dict[str, list[int]]) -> None:
        if not self.root.is_dir():
            return
        data = json.dumps({"version": 1, "certificates": entries}, separators=(",", ":"))
        with contextlib.suppress(OSError):  # a read-only store plans, only slower
            write_private(self.root / EXPIRY_CACHE, data.encode(), sync_dir=False)

    def migrate(self) -> tuple[dict[str, int], list[str]]:
        """Move device folders of the flat layout into their account's folder.

        Returns how many moved per account folder, and one line per folder left in place
        (no readable config naming an account, or the same device already moved).
        Run only under the run lock: a rename is atomic, but two runs deciding at once are
        not.
        """
        moved: dict[str, int] = {}
        left: list[str] = []
        for name, owner in sorted(self._flat().items()):
            source = self.base / name
            if owner is None:
                left.append(f"{source}: a key folder of the flat layout whose "
                            "iotcDeviceConfig.json names no account; move it into "
                            f"{self.base}/<cpId>-<env>/ yourself")
                continue
            target = self.base / owner / name
            if target.exists() or target.is_symlink():
                left.append(f"{source}: not moved, {target} exists already")
                continue
            target.parent.mkdir(mode=0o700, exist_ok=True)
            _refuse_symlink(target.parent)
            os.rename(source, target)
            moved[owner] = moved.get(owner, 0) + 1
        if moved:
            sync_directory(self.base)
            for owner in moved:
                sync_directory(self.base / owner)
        return moved, left

    def _flat(self) -> dict[str, str | None]:
        """Device folders directly in the keys dir (the flat layout) and the account each
        one's config names (None when it names none readably)."""
        return {name: _config_account(self.base / name) for name in _key_folders(self.base)}

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
                cert = _kept_cert_text(self.folder(duid) / "cert.pem")
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
            cert = _kept_cert_text(self.folder(duid) / "cert.pem")
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
                _refuse_symlink(self.base)
                self.root.mkdir(exist_ok=True, mode=0o700)
                _refuse_symlink(self.root)
                self.check_private()
                self._ready = True
        folder = self.folder(duid)
        key_path, cert_path = folder / "key.pem", folder / "cert.pem"
        if not folder.is_symlink():
            folder.mkdir(mode=0o700, exist_ok=True)
        _refuse_symlink(folder)
        os.chmod(folder, 0o700, follow_symlinks=False)
        if self.sealed_to and not key_path.exists() and not key_path.is_symlink():
            return self._ensure_sealed(duid, folder, common_name, device_config, registered)
        key = ec.generate_private_key(ec.SECP256R1())
        created = create_exclusive(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()), sync_dir=False)
        if not created:
            key = _load_key(key_path)
            kept = _kept_certificate(cert_path, key)
            if not registered:
                self.require_attested(duid, kept)
            if kept is not None:
                return DeviceIdentity(duid, kept, key_path, reused=True)
        cert = self.issuer.certificate(key, common_name)
        write_private(folder / "iotcDeviceConfig.json",
                      (json.dumps(device_config, indent=4) + "\n").encode(), sync_dir=False,
                      make_parent=False)
        write_private(cert_path, cert.encode(), sync_dir=False, make_parent=False)
        self._attest(duid, cert)
        sync_directory(folder)  # one fsync makes the key and both renames durable
        if created:
            with self._lock:
                self.written += 1
        return DeviceIdentity(duid, cert, key_path, reused=not created)


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
            _refuse_symlink(sealed)
            kept = _kept_cert_text(cert_path)
            if kept is None:
                raise KeyStoreError(f"{sealed} has no cert.pem beside it; restore the "
                                    "device's certificate (it cannot be rebuilt without "
                                    "unsealing the key)")
            if not registered:
                self.require_attested(duid, kept)
            return DeviceIdentity(duid, kept, sealed, reused=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.issuer.certificate(key, common_name)
        write_private(folder / "iotcDeviceConfig.json",
                      (json.dumps(device_config, indent=4) + "\n").encode(), sync_dir=False,
                      make_parent=False)
        write_private(cert_path, cert.encode(), sync_dir=False, make_parent=False)
        self._attest(duid, cert)
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


def public_key_matches(registered_pem: str, kept_pem: str) -> bool:
    """Whether two certificates hold the same public key."""
    a = x509.load_pem_x509_certificate(registered_pem.encode()).public_key()
    b = x509.load_pem_x509_certificate(kept_pem.encode()).public_key()
    return bool(a.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo) ==
                b.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo))


def thumbprint(cert_pem: str) -> str:
    """The certificate's SHA-1 thumbprint, upper-case hex (Azure's `primaryThumbprint`)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S324 (an identifier)


def _kept_cert_text(path: Path) -> str | None:
    """A kept certificate (parsed, never a symlink); None when there is none."""
    if not path.exists() and not path.is_symlink():
        return None
    _refuse_symlink(path)
    text = _read_text(path)
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a PEM certificate") from exc
    return text


def _key_folders(folder: Path) -> set[str]:
    """Names of the real (not symlinked) sub-folders of `folder` that hold a key, plain or
    sealed. One directory scan (entry types come with it) and one stat per device."""
    if not folder.is_dir() or folder.is_symlink():
        return set()
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_dir(follow_symlinks=False) and (
            os.path.isfile(os.path.join(e.path, "key.pem")) or
            os.path.isfile(os.path.join(e.path, SEALED)))}


def _config_account(folder: Path) -> str | None:
    """`<cpid>-<env>` from a device folder's iotcDeviceConfig.json, or None."""
    path = folder / "iotcDeviceConfig.json"
    try:
        if path.is_symlink():
            return None
        config = json.loads(path.read_text(encoding="utf-8"))
        return account_folder(str(config["cpid"]), str(config["env"]))
    except (OSError, ValueError, KeyError, TypeError, KeyStoreError):
        return None


def fingerprint(certificate_pem: str) -> str:
    """SHA-256 of the certificate's public key, the way a person can compare two."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return "SHA256:" + digest.finalize().hex()[:32]


def _read_bytes(path: Path) -> bytes:
    """A key store file: small, regular, not followed (`safefile.read_small`)."""
    try:
        return read_small(path)
    except NotRegular as exc:
        raise KeyStoreError(f"{path} is {exc.strerror}") from None


def _read_text(path: Path) -> str:
    try:
        return _read_bytes(path).decode("ascii")
    except UnicodeDecodeError:
        raise KeyStoreError(f"{path} is not a PEM certificate") from None


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise KeyStoreError(f"{path} is a symlink; the key store follows none")


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An existing key, only if it is a private, regular, readable EC key."""
    _refuse_symlink(path)
    mode = path.lstat().st_mode
    if mode & 0o077:
        raise KeyStoreError(f"{path} is readable by others (mode {mode & 0o777:o}); "
                            f"run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(_read_bytes(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a readable private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{path} is not an EC private key")
    return key


def _kept_certificate(path: Path, key: ec.EllipticCurvePrivateKey) -> str | None:
    """The kept certificate when it belongs to `key`; None when there is none yet."""
    if not path.exists() and not path.is_symlink():
        return None
    _refuse_symlink(path)
    text = _read_text(path)
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a PEM certificate") from exc
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise KeyStoreError(f"{path} does not belong to the key beside it; the device's "
                            "key and certificate must be restored together")
    return text


def self_signed(key: ec.EllipticCurvePrivateKey, common_name: str,
                days: int = VALIDITY_DAYS) -> str:
    return Issuer(days).certificate(key, common_name)


@dataclass(frozen=True)
class Issuer:
    """Who signs the certificates the store makes: the device key itself (self-signed), or
    the user's CA (`ca_cert` and `ca_key`, read by the CLI, never copied anywhere)."""

    days: int = VALIDITY_DAYS
    ca_cert: x509.Certificate | None = None
    ca_key: Any = None

    @property
    def has_ca(self) -> bool:
        return self.ca_cert is not None

    def certificate(self, key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
        name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=self.days)))
        if self.ca_cert is None:
            cert = builder.issuer_name(name).sign(key, hashes.SHA256())
        else:
            ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
            cert = (builder.issuer_name(self.ca_cert.subject)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                   critical=True)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                        ski), critical=False)
                    .sign(self.ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_issuer(days: int, ca_cert: Path | None, ca_key: Path | None,
                passphrase: str | None) -> Issuer:
    """The issuer the CLI asked for; KeyStoreError in one line for anything unusable."""
    if days < 1 or days > 36500:
        raise KeyStoreError(f"--cert-days {days}: between 1 and 36500")
    if (ca_cert is None) != (ca_key is None):
        raise KeyStoreError("--ca-cert and --ca-key go together")
    if ca_cert is None or ca_key is None:
        return Issuer(days)
    try:
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyStoreError(f"--ca-cert {ca_cert}: not a readable PEM certificate ({exc})") \
            from None
    try:
        key = serialization.load_pem_private_key(
            ca_key.read_bytes(), password=passphrase.encode() if passphrase else None)
    except TypeError:
        raise KeyStoreError(f"--ca-key {ca_key} is encrypted: set IOTC_CA_KEY_PASSPHRASE") \
            from None
    except (OSError, ValueError):
        raise KeyStoreError(f"--ca-key {ca_key}: not a readable private key (or the "
                            "passphrase is wrong)") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise KeyStoreError(f"--ca-key {ca_key} does not belong to --ca-cert {ca_cert}")
    return Issuer(days, cert, key)


def common_name(duid: str, cpid: str, dedicated: bool) -> str:
    """The MQTT client id: `{cpId}-{duid}` on shared instances, `{duid}` on dedicated ones."""
    return duid if dedicated else f"{cpid}-{duid}"


def device_config(duid: str, cpid: str, env: str, pf: str, dedicated: bool,
                  auth_type: int = 3) -> dict[str, object]:
    """`iotcDeviceConfig.json` for the Python Lite SDK."""
    return {"ver": "2.1", "pf": pf, "cpid": cpid, "env": env, "uid": duid,
            "did": common_name(duid, cpid, dedicated), "at": auth_type}


# -- custody: list, verify, unseal, seal --------------------------------------------------------


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
        text = _kept_cert_text(folder / "cert.pem")
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
    _refuse_symlink(folder)
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
        _load_key(plain)  # refuses loose permissions and garbage
        pem = plain.read_bytes()
    else:
        raise KeyStoreError(f"{duid}: no key in {store.root}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyStoreError(f"{duid}: the unsealed key is not a private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            _kept_certificate(folder / "cert.pem", key) is None:
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
    key = _load_key(plain)
    _kept_certificate(folder / "cert.pem", key)
    pem = plain.read_bytes()
    if not create_exclusive(sealed, pyrage.encrypt(pem, list(store.sealed_to))):
        raise KeyStoreError(f"{sealed} exists beside a plain key.pem; keep one of them")
    os.unlink(plain)
    sync_directory(folder)
    return True
