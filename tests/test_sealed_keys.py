"""The sealed key store: keys exist on disk only encrypted to age recipients (issue 12)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyrage import x25519

from iotc_apply.cli import main
from iotc_apply.emulator import EmulatorServer, Knobs

from .support import account_keys, env_for, iotc, live


def _no_plaintext(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            assert b"PRIVATE KEY" not in file.read_bytes(), file
            assert file.name != "key.pem", file


def _matches_registered(server: EmulatorServer, duid: str, pem: bytes) -> bool:
    device = next(d for d in live(server)["device"] if d["uniqueId"] == duid)
    cert = x509.load_pem_x509_certificate(device["certificateText"].encode())
    return cert.public_key() == serialization.load_pem_private_key(pem, None).public_key()


def test_the_ci_runner_keeps_only_sealed_keys_and_provisioning_unseals_them(
        work: Path, server: EmulatorServer, identity: tuple[Path, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    path, recipient = identity
    assert iotc("apply", "m", "--auto-approve", "--keys-recipient", recipient) == 0
    keys = account_keys(server, work / "keys")
    assert len(list(keys.glob("*/key.pem.age"))) == 60
    _no_plaintext(work / "keys")
    capsys.readouterr()
    assert iotc("plan", "m", "--detailed-exitcode") == 0  # sealed keys count as kept
    assert "private key is not in the key store" not in capsys.readouterr().out

    (work / "prov").mkdir(mode=0o700)
    assert main(["keys", "unseal", "th-lab-01", "gw-0002", "--identity", str(path), "--out",
                 "prov", "--keys-dir", "keys"]) == 0
    for duid in ("th-lab-01", "gw-0002"):
        pem = (work / "prov" / duid / "key.pem").read_bytes()
        assert _matches_registered(server, duid, pem)
        assert (work / "prov" / duid / "key.pem").stat().st_mode & 0o777 == 0o600
    assert main(["keys", "unseal", "th-lab-01", "--identity", str(path), "--out", "prov",
                 "--keys-dir", "keys"]) == 1
    assert "exists; nothing is overwritten" in capsys.readouterr().err


def test_refusals_are_one_line_and_write_nothing(
        work: Path, server: EmulatorServer, identity: tuple[Path, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    path, recipient = identity
    assert iotc("apply", "m", "--auto-approve", "--keys-recipient", recipient) == 0
    other = work / "other.txt"
    other.write_text(f"{x25519.Identity.generate()}\n")
    (work / "open").mkdir(mode=0o755)
    (work / "open").chmod(0o755)
    (work / "prov").mkdir(mode=0o700)
    sealed = account_keys(server, work / "keys") / "lt-0001" / "key.pem.age"
    sealed.write_bytes(b"age-encryption.org/v1\ngarbage")
    for args, message in (
            (["th-lab-01", "--identity", str(other), "--out", "prov"],
             "cannot unseal: no identity given matches it"),
            (["lt-0001", "--identity", str(path), "--out", "prov"],
             "cannot unseal: the file is damaged"),
            (["th-lab-01", "--identity", str(path), "--out", "open"],
             "is readable by others (mode 755); run: chmod 700"),
            (["th-lab-01", "--identity", str(work / "m" / "devices.yaml"), "--out", "prov"],
             "not an age identity")):
        capsys.readouterr()
        assert main(["keys", "unseal", *args, "--keys-dir", "keys"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert list((work / "prov").iterdir()) == [] and list((work / "open").iterdir()) == []
    assert iotc("apply", "m", "--auto-approve", "--keys-recipient", "age1nope") == 1
    assert "is not an age recipient" in capsys.readouterr().err


def test_a_plain_store_is_sealed_and_verified(
        work: Path, server: EmulatorServer, identity: tuple[Path, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    path, recipient = identity
    assert iotc("apply", "m", "--auto-approve") == 0
    assert main(["keys", "seal", "--recipient", recipient, "--keys-dir", "keys"]) == 0
    assert "Sealed 60 key(s)" in capsys.readouterr().out
    _no_plaintext(work / "keys")
    assert main(["keys", "verify", "--identity", str(path), "--keys-dir", "keys"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("60 key/certificate pair(s) match; 0 sealed key(s) not opened") and \
        out.endswith("; 0 problem(s).\n")
    shutil.rmtree(account_keys(server, work / "keys") / "gw-0003")
    assert main(["keys", "list", "gw-*", "--keys-dir", "keys"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[:4] == ["gw-0001", "sealed", listing[1].split()[2], "yes"]
    assert len(listing) == 3
    assert main(["keys", "verify", "--keys-dir", "keys"]) == 1
    assert "device/gw-0003: live on a self-signed template, no key kept" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_killed_during_a_sealed_apply_then_rerun_every_device_has_its_sealed_key(
        server: EmulatorServer, tmp_path: Path, identity: tuple[Path, str]) -> None:
    path, recipient = identity
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "fleet.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Template\nmetadata: {name: t1}\nspec: {name: T, authType: "
        "self-signed, attributes: [{name: a, type: DECIMAL}]}\n---\napiVersion: iotc/v1\n"
        "kind: DeviceSet\nmetadata: {name: s}\nspec: {count: 200, uniqueId: 'k-{index:03}', "
        "template: t1}\n")
    env = env_for(server, tmp_path / "config")
    cmd = [sys.executable, "-m", "iotc_apply", "apply", "m", "--auto-approve", "--keys-dir",
           "keys", "--keys-recipient", recipient]
    server.emulator.traffic.configure(Knobs(latency_ms=15))
    run = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(live(server).get("device", [])) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    created = len(live(server).get("device", []))
    assert 0 < created < 200  # killed in the middle
    server.emulator.traffic.configure(Knobs())
    assert subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True).returncode == 0
    devices = live(server)["device"]
    assert len(devices) == 200
    store = account_keys(server, tmp_path / "keys")
    _no_plaintext(tmp_path / "keys")
    from iotc_apply.keystore import KeyStore, identities, private_key

    keys = KeyStore(tmp_path / "keys", store.name)
    mine = identities(path)
    for device in devices:
        pem = private_key(keys, device["uniqueId"], mine)
        assert _matches_registered(server, device["uniqueId"], pem)
