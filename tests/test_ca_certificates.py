"""Certificates beyond self-signed: apply signs with the user's CA; validity; expiry warnings."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotc_apply.emulator import EmulatorServer
from iotc_apply.keystore import KeyStore, self_signed

from .support import account_keys, iotc, live

FLEET = """apiVersion: iotc/v1
kind: Template
metadata: {{name: {code}}}
spec: {{name: {code}, authType: {auth}, attributes: [{{name: a, type: DECIMAL}}]}}
---
apiVersion: iotc/v1
kind: DeviceSet
metadata: {{name: {code}-set}}
spec: {{count: 2, uniqueId: "{code}-{{index:02}}", template: {code}}}
"""


def _ca(folder: Path, passphrase: bytes | None = None) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fleet CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    crypt = serialization.BestAvailableEncryption(passphrase) if passphrase else \
        serialization.NoEncryption()
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt))
    return folder / "ca.pem", folder / "ca.key", cert


def test_apply_signs_both_ca_template_types_with_the_users_ca(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    (work / "ca").mkdir()
    ca_cert, ca_key, ca = _ca(work / "ca", b"s3cret-pass")
    (work / "fleet").mkdir()
    (work / "fleet" / "m.yaml").write_text(
        FLEET.format(code="casig", auth="ca-signed") + "---\n" +
        FLEET.format(code="caind", auth="ca-individual"))
    assert iotc("plan", "fleet") == 1  # ca-individual devices need a certificate or a CA
    assert "--ca-cert FILE --ca-key FILE" in capsys.readouterr().out
    assert iotc("apply", "fleet", "--auto-approve", "--ca-cert", str(ca_cert), "--ca-key",
                str(ca_key)) == 1
    assert "is encrypted: set IOTC_CA_KEY_PASSPHRASE" in capsys.readouterr().err
    monkeypatch.setenv("IOTC_CA_KEY_PASSPHRASE", "s3cret-pass")
    assert iotc("apply", "fleet", "--auto-approve", "--ca-cert", str(ca_cert), "--ca-key",
                str(ca_key), "--cert-days", "400") == 0
    assert "4 private key(s) written" in capsys.readouterr().out
    devices = {d["uniqueId"]: d for d in live(server)["device"]}
    keys = account_keys(server, work / "keys")
    for duid in ("casig-01", "casig-02", "caind-01", "caind-02"):
        cert = x509.load_pem_x509_certificate((keys / duid / "cert.pem").read_bytes())
        cert.verify_directly_issued_by(ca)  # the chain verifies with the CA certificate
        key = serialization.load_pem_private_key((keys / duid / "key.pem").read_bytes(), None)
        assert cert.public_key() == key.public_key()
        days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
        assert 399 <= days <= 400
        registered = devices[duid].get("certificateText")
        if duid.startswith("caind"):  # ca-individual registers it; ca-signed none
            assert registered == (keys / duid / "cert.pem").read_text()
        else:
            assert not registered
    assert not list((work / "keys").rglob("ca.key")) and b"Fleet CA" not in b"".join(
        p.read_bytes() for p in (work / "keys").rglob("*.json"))
    assert iotc("plan", "fleet", "--ca-cert", str(ca_cert), "--detailed-exitcode") == 0


def test_plan_warns_about_certificates_that_expire_soon(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert iotc("apply", "m", "--auto-approve", "--cert-days", "20") == 0
    capsys.readouterr()
    assert iotc("plan", "m") == 0
    out = capsys.readouterr().out
    assert "warning: 60 devices: its kept certificate expires soon" in out
    assert iotc("plan", "m", "--expiry-warning", "10") == 0
    assert "expires soon" not in capsys.readouterr().out


def test_a_store_signs_with_the_issuer_it_is_given(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = x509.load_pem_x509_certificate(self_signed(key, "cn", days=5).encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 5
    assert KeyStore(tmp_path).issuer.has_ca is False
