"""The key store: one folder per device with its private key, certificate and SDK config.

`<keys-dir>/<duid>/key.pem` (0600), `cert.pem`, `iotcDeviceConfig.json`; folders 0700.
Every file is written atomically and durably (temp file, fsync, rename, fsync of the folder)
*before* the device is registered, and an existing key is reused, never overwritten: a key
that was lost cannot be recovered, and a device whose key is lost must be replaced.
The store trusts nothing it finds on disk: a symlink anywhere in it (the keys dir, a device
folder, a file) is refused, a key readable by group or others is refused with the chmod to
run, and a key whose certificate does not match it is refused. `key.pem` is created with
O_EXCL and never replaced: when two runs race, the second uses the first one's key.
Private keys never leave this module except as files. Imports `safefile` only.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..safefile import create_exclusive, sync_directory, write_private

DEFAULT_KEYS_DIR = Path(".iotc") / "keys"
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


class KeyStore:
    def __init__(self, root: Path = DEFAULT_KEYS_DIR) -> None:
        self.root = root
        self._lock = threading.Lock()

    def folder(self, duid: str) -> Path:
        return self.root / duid

    def has_key(self, duid: str) -> bool:
        return (self.folder(duid) / "key.pem").is_file()

    def duids(self) -> frozenset[str]:
        """DUIDs with a stored key (one directory listing, for the plan's warnings)."""
        if not self.root.is_dir():
            return frozenset()
        return frozenset(p.name for p in self.root.iterdir() if (p / "key.pem").is_file())

    def ensure(self, duid: str, common_name: str, device_config: dict[str, object]) -> \
            DeviceIdentity:
        """The device's certificate, generating and storing a key first if it has none."""
        if not duid or duid in (".", "..") or any(c in duid for c in "/\\\0\n\r"):
            raise KeyStoreError(f"{duid!r} cannot name a key folder")
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            _refuse_symlink(self.root)
        folder = self.folder(duid)
        key_path, cert_path = folder / "key.pem", folder / "cert.pem"
        if not folder.is_symlink():
            folder.mkdir(mode=0o700, exist_ok=True)
        _refuse_symlink(folder)
        os.chmod(folder, 0o700, follow_symlinks=False)
        key = ec.generate_private_key(ec.SECP256R1())
        created = create_exclusive(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()), sync_dir=False)
        if not created:
            key = _load_key(key_path)
            kept = _kept_certificate(cert_path, key)
            if kept is not None:
                return DeviceIdentity(duid, kept, key_path, reused=True)
        cert = self_signed(key, common_name)
        write_private(folder / "iotcDeviceConfig.json",
                      (json.dumps(device_config, indent=4) + "\n").encode(), sync_dir=False)
        write_private(cert_path, cert.encode(), sync_dir=False)
        sync_directory(folder)  # one fsync makes the key and both renames durable
        return DeviceIdentity(duid, cert, key_path, reused=not created)


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
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
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
    text = path.read_text()
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a PEM certificate") from exc
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise KeyStoreError(f"{path} does not belong to the key beside it; the device's "
                            "key and certificate must be restored together")
    return text


def self_signed(key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def common_name(duid: str, cpid: str, dedicated: bool) -> str:
    """The MQTT client id: `{cpId}-{duid}` on shared instances, `{duid}` on dedicated ones."""
    return duid if dedicated else f"{cpid}-{duid}"


def device_config(duid: str, cpid: str, env: str, pf: str, dedicated: bool,
                  auth_type: int = 3) -> dict[str, object]:
    """`iotcDeviceConfig.json` for the Python Lite SDK."""
    return {"ver": "2.1", "pf": pf, "cpid": cpid, "env": env, "uid": duid,
            "did": common_name(duid, cpid, dedicated), "at": auth_type}
