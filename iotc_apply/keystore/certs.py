"""Certificates: who signs a device's certificate (itself, or the user's CA), the names
and SDK config a device needs, and the fingerprints people and services compare.
May import: nothing else of iotc_apply."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import VALIDITY_DAYS, KeyStoreError, ec, hashes, oid, serialization, x509


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


def fingerprint(certificate_pem: str) -> str:
    """SHA-256 of the certificate's public key, the way a person can compare two."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return "SHA256:" + digest.finalize().hex()[:32]


def thumbprint(cert_pem: str) -> str:
    """The certificate's SHA-1 thumbprint, upper-case hex (Azure's `primaryThumbprint`)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S324 (an identifier)


def public_key_matches(registered_pem: str, kept_pem: str) -> bool:
    """Whether two certificates hold the same public key."""
    a = x509.load_pem_x509_certificate(registered_pem.encode()).public_key()
    b = x509.load_pem_x509_certificate(kept_pem.encode()).public_key()
    return bool(a.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo) ==
                b.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo))
