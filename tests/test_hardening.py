"""Two runs at once, a key store that trusts nothing on disk, careful plan files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iotc_apply.cli import main
from iotc_apply.client import IoTConnect
from iotc_apply.emulator import Account, EmulatorServer
from iotc_apply.keystore import KeyStore, KeyStoreError
from iotc_apply.safefile import run_lock

from .support import EXAMPLES, account_keys, env_for, iotc, live, point_cli_at, self_signed_pem

CONFIG = {"ver": "2.1", "uid": "d"}


def _registered_certificates_match_kept_keys(server: EmulatorServer, keys: Path) -> int:
    devices = live(server).get("device", [])
    for device in devices:
        registered = x509.load_pem_x509_certificate(device["certificateText"].encode())
        key = serialization.load_pem_private_key(
            (account_keys(server, keys) / device["uniqueId"] / "key.pem").read_bytes(),
            password=None)
        assert registered.public_key().public_numbers() == \
            key.public_key().public_numbers(), device["uniqueId"]  # type: ignore[union-attr]
    return len(devices)


@pytest.mark.slow
def test_two_applies_at_once_keep_every_registered_key(server: EmulatorServer,
                                                       tmp_path: Path) -> None:
    """Two real processes, one served emulator, one key store, five times over."""
    shutil.copytree(EXAMPLES, tmp_path / "m")
    env = env_for(server, tmp_path / "config")
    cmd = [sys.executable, "-m", "iotc_apply", "apply", "m", "--auto-approve",
           "--keys-dir", "keys", "--lock-timeout", "120"]
    for _ in range(5):
        server.emulator.state.reset()
        shutil.rmtree(tmp_path / "keys", ignore_errors=True)
        runs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [r.communicate(timeout=120)[0] for r in runs]
        assert [r.returncode for r in runs] == [0, 0], outputs
        assert "Traceback" not in "".join(outputs)
        assert _registered_certificates_match_kept_keys(server, tmp_path / "keys") == 60


def test_a_second_apply_is_refused_while_the_lock_is_held(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    with run_lock(work / "keys" / ".lock"):
        assert iotc("apply", "m", "--auto-approve") == 1
    err = capsys.readouterr().err
    assert "another apply holds the lock since" in err and f"by pid {os.getpid()}" in err
    assert iotc("apply", "m", "--auto-approve") == 0  # released on the way out


@pytest.mark.parametrize("pid", ["\u00b2", "99999999999999999999", "0"])
def test_a_lock_file_naming_no_real_pid_is_taken_over_quietly(tmp_path: Path,
                                                             pid: str) -> None:
    """The lock's text is anyone's who could write the keys dir: a pid that is not ASCII
    digits ('²' passes `isdigit`, fails `int`) or does not fit a pid_t was an internal error."""
    import socket

    lock = tmp_path / ".lock"
    lock.write_text(f"{pid} {socket.gethostname()} 10:00 apply\n")
    with run_lock(lock) as warning:
        assert warning is None
    assert lock.read_text() == ""


def test_a_keys_dir_that_cannot_hold_the_lock_is_one_line(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    Path("afile").write_text("")
    assert main(["apply", "m", "--auto-approve", "--keys-dir", "afile/keys"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: cannot take the run lock at afile/keys/.lock: Not a directory"


def _store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def test_a_kept_key_is_never_replaced(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = store.ensure("dev-1", "cn", CONFIG)
    key = (tmp_path / "keys" / "dev-1" / "key.pem").read_bytes()
    (tmp_path / "keys" / "dev-1" / "cert.pem").unlink()
    again = store.ensure("dev-1", "cn", CONFIG)
    assert (tmp_path / "keys" / "dev-1" / "key.pem").read_bytes() == key and again.reused
    assert x509.load_pem_x509_certificate(again.certificate_pem.encode()).public_key() \
        .public_numbers() == x509.load_pem_x509_certificate(
            first.certificate_pem.encode()).public_key().public_numbers()


def test_the_key_store_follows_no_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    store = _store(tmp_path)
    store.root.mkdir()
    (store.root / "dev-1").symlink_to(outside)
    with pytest.raises(KeyStoreError, match="is a symlink"):
        store.ensure("dev-1", "cn", CONFIG)
    assert list(outside.iterdir()) == [] and (outside.stat().st_mode & 0o777) == 0o755

    store.ensure("dev-2", "cn", CONFIG)
    cert = store.root / "dev-2" / "cert.pem"
    cert.unlink()
    cert.symlink_to("/etc/passwd")
    with pytest.raises(KeyStoreError, match="cert.pem is a symlink"):
        store.ensure("dev-2", "cn", CONFIG)

    linked = KeyStore(tmp_path / "linked")
    (tmp_path / "linked").symlink_to(outside)
    with pytest.raises(KeyStoreError, match="is a symlink"):
        linked.ensure("dev-3", "cn", CONFIG)


def test_the_key_store_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.ensure("dev-1", "cn", CONFIG)
    store.ensure("dev-2", "cn", CONFIG)
    one, two = store.root / "dev-1", store.root / "dev-2"
    shutil.copy(two / "cert.pem", one / "cert.pem")  # another key's certificate
    with pytest.raises(KeyStoreError, match="does not belong to the key beside it"):
        store.ensure("dev-1", "cn", CONFIG)
    (two / "key.pem").chmod(0o644)
    with pytest.raises(KeyStoreError, match=r"readable by others \(mode 644\); run: chmod 600"):
        store.ensure("dev-2", "cn", CONFIG)
    (two / "key.pem").chmod(0o600)
    (two / "key.pem").write_bytes(b"garbage")
    with pytest.raises(KeyStoreError, match="not a readable private key"):
        store.ensure("dev-2", "cn", CONFIG)
    for bad in ("../x", "a/b", "..", "bad\n"):
        with pytest.raises(KeyStoreError, match="cannot name a key folder"):
            store.ensure(bad, "cn", CONFIG)


def test_plan_out_never_writes_through_a_planted_symlink(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    victim = work / "victim.txt"
    victim.write_text("precious")
    for name in (".plan.json.tmp", "plan.json"):
        (work / name).symlink_to(victim)
        assert iotc("plan", "m", "--out", "plan.json") == 0
        assert victim.read_text() == "precious"
        assert not (work / "plan.json").is_symlink()
        (work / "plan.json").unlink()
        if (work / name).is_symlink():
            (work / name).unlink()


def test_generated_keys_are_ec_and_private(tmp_path: Path) -> None:
    identity = _store(tmp_path).ensure("dev-1", "cn", CONFIG)
    key = serialization.load_pem_private_key(identity.key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert identity.key_path.stat().st_mode & 0o777 == 0o600
    assert identity.key_path.parent.stat().st_mode & 0o777 == 0o700


def test_names_that_differ_only_in_case_are_one_object(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "fleet.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Template\nmetadata: {name: t1}\n"
        "spec: {name: T, authType: self-signed, attributes: [{name: a, type: STRING}]}\n"
        "---\napiVersion: iotc/v1\nkind: Device\nmetadata: {name: DEV-01}\nspec: {template: t1}\n"
        "---\napiVersion: iotc/v1\nkind: Device\nmetadata: {name: dev-01}\nspec: {template: t1}\n")
    assert main(["validate", str(tmp_path / "m")]) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "fleet.yaml:13:18: error: device/dev-01 is already declared as device/DEV-01 " \
           "(names differ only in case) at " in out and "1 error" in out


def test_a_symlinked_folder_is_read_inside_the_root_and_refused_outside(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Never skipped silently: the devices in a skipped folder would be pruned."""
    root = tmp_path / "m"
    shutil.copytree(EXAMPLES, root / "real")
    (root / "inside").symlink_to(root / "real" / "templates")  # read once, inside the root
    (root / "loop").symlink_to(root)
    assert main(["validate", str(root)]) == 0
    assert "Valid: " in capsys.readouterr().out
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "more.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Device\nmetadata: {name: x-1}\nspec: {template: t1}\n")
    (root / "out").symlink_to(tmp_path / "elsewhere")
    assert main(["validate", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"{root / 'out'}: error: is a symlink that leads outside the manifest root" in err


def test_a_wrong_password_is_tried_once_per_command(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IOTC_PASS", "not-the-password")
    server.emulator.traffic.reset_counts()
    assert iotc("plan", "m") == 1
    assert server.emulator.traffic.counts.get("POST /Auth/login") == 1
    err = capsys.readouterr().err
    assert "login refused for " in err and "not retried" in err
    assert "not-the-password" not in err


def test_secrets_never_reach_an_error_line(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    skey = server.emulator.state.account.solution_key
    monkeypatch.setenv("IOTC_DISCOVERY_URL", "discovery.example/api")
    assert iotc("plan", "m") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: IOTC_DISCOVERY_URL must be an https:// URL") and skey not in err
    monkeypatch.setenv("IOTC_DISCOVERY_URL", server.discovery_url)

    def bug(*_: object, **__: object) -> None:
        raise RuntimeError(f"unexpected: {skey} / {os.environ['IOTC_PASS']}")

    monkeypatch.setattr("iotc_apply.snapshot.start", bug)
    assert iotc("plan", "m") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: RuntimeError: unexpected: (redacted) / "
                          "(redacted)"), err


def test_a_device_registered_before_its_key_was_made_is_a_failure_not_done(
        work: Path, server: EmulatorServer, api: IoTConnect) -> None:  # noqa: F811
    """The create meets a duplicate that no earlier try of this run made: the certificate
    the device holds cannot be the one from the key just generated."""
    from iotc_apply import snapshot
    from iotc_apply.apply.actions import Actions
    from iotc_apply.apply.executor import Status, execute
    from iotc_apply.manifest import load
    from iotc_apply.plan import make_plan

    assert iotc("apply", "m", "--auto-approve") == 0
    keys = KeyStore(work / "keys", account_keys(server, work / "keys").name)
    found = api.devices.get_by_duid("th-lab-02")
    assert found is not None
    api.devices.delete(found.guid)
    shutil.rmtree(keys.folder("th-lab-02"))
    desired = load([str(work / "m")]).desired
    plan = make_plan(desired, snapshot.take(api, ["gateway01", "sensor01"], ["SENSORFW"]))
    assert [str(c.address) for c in plan.changes] == ["device/th-lab-02"]
    # Between the plan and its create, someone registers th-lab-02 with their own key.
    api.devices.create(found.template_guid, "th-lab-02", "theirs", api.entities.root().guid,
                       self_signed_pem("th-lab-02"))

    result = execute(plan, Actions(api, keys, plan), parallelism=2)

    [step] = result.results
    assert step.status is Status.FAILED
    assert "device th-lab-02 is already registered, with a certificate this key store never " \
           "made (the key made now, SHA256:" in step.message
    assert not keys.folder("th-lab-02").exists()  # no key kept that no device can use


def test_keys_are_kept_per_account_and_a_flat_store_is_moved(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """Staging then production on one keys dir: separate folders, each CN its own cpId."""
    acc = server.emulator.state.account
    flat = work / "keys" / "th-lab-01"
    store = KeyStore(work / "keys")
    kept = store.ensure("th-lab-01", f"{acc.cpid}-th-lab-01",
                        {"cpid": acc.cpid, "env": acc.env}).key_path.read_bytes()
    store.ensure("other-01", "cn", {"cpid": "OTHERCPID", "env": "prod"})
    store.ensure("nobody-01", "cn", {"ver": "2.1"})
    assert iotc("apply", "m", "--auto-approve") == 0
    err = capsys.readouterr().err
    ours = account_keys(server, work / "keys")
    assert f"notice: moved 1 device key folder(s) into keys/{ours.name}/ (keys are kept per " \
           "account now)" in err
    assert "OTHERCPID-prod/" in err and "nobody-01: a key folder of the flat layout" in err
    assert not flat.exists() and (ours / "th-lab-01" / "key.pem").read_bytes() == kept
    assert (work / "keys" / "OTHERCPID-prod" / "other-01" / "key.pem").exists()
    assert _registered_certificates_match_kept_keys(server, work / "keys") == 60

    with EmulatorServer(account=Account(cpid="PRODCPID00000000", env="prod")) as prod:
        point_cli_at(prod, work / "config-prod", monkeypatch)
        monkeypatch.setenv("IOTC_ENV", "prod")
        assert iotc("apply", "m", "--auto-approve") == 0
        prod_keys = account_keys(prod, work / "keys")
        assert prod_keys.name == "PRODCPID00000000-prod"
        assert _registered_certificates_match_kept_keys(prod, work / "keys") == 60
    cert = x509.load_pem_x509_certificate((prod_keys / "th-lab-01" / "cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=PRODCPID00000000-th-lab-01"
    assert json.loads((prod_keys / "th-lab-01" / "iotcDeviceConfig.json").read_text())[
        "env"] == "prod"
    assert (ours / "th-lab-01" / "key.pem").read_bytes() != \
        (prod_keys / "th-lab-01" / "key.pem").read_bytes()


def test_a_key_write_killed_half_way_leaves_no_key(tmp_path: Path) -> None:
    """All or nothing: a process killed between writing and syncing a key leaves nothing a
    later run could take for a kept key (it used to leave a truncated key.pem behind)."""
    from iotc_apply import safefile

    target = tmp_path / "key.pem"
    child = ("import os, sys; from pathlib import Path; from iotc_apply import safefile; "
             "os.fsync = lambda fd: os._exit(9); "  # killed: no cleanup code runs
             "safefile.create_exclusive(Path(sys.argv[1]), b'-----BEGIN EC PRIVATE KEY-----')")
    done = subprocess.run([sys.executable, "-c", child, str(target)])
    assert done.returncode == 9
    assert not target.exists()
    assert safefile.create_exclusive(target, b"key") and target.read_bytes() == b"key"
    assert not safefile.create_exclusive(target, b"other") and target.read_bytes() == b"key"
