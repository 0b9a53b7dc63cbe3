"""Group commit of new key folders: staged whole, one sync for many, then put in place."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iotc_apply import safefile
from iotc_apply.keystore import KeyStore, KeyStoreError
from iotc_apply.keystore import commit as commit_module
from iotc_apply.keystore.commit import STALE_AFTER, GroupCommit
from iotc_apply.keystore.layout import STAGING

CONFIG = {"ver": "2.1", "uid": "d"}


def _staged(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(STAGING))


def test_folders_staged_meanwhile_share_one_sync_made_before_any_is_placed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path / "keys")
    store.ensure("first", "cn", CONFIG)
    rounds: list[list[object]] = []  # each round's batch
    checked: list[bool] = []  # at each sync: the batch staged whole, none of it in place
    real_commit, real_sync = GroupCommit._commit, safefile.sync_filesystem

    def commit(self: GroupCommit, batch: list[object]) -> None:
        rounds.append(batch)
        real_commit(self, batch)

    def slow_sync(folder: Path) -> bool:
        batch = rounds[-1]
        checked.append(all(e.staged.is_dir() and not os.path.lexists(e.final)  # type: ignore[attr-defined]
                           and len(os.listdir(e.staged)) == 3 for e in batch))  # type: ignore[attr-defined]
        time.sleep(0.2)  # the others stage their folders while this round syncs
        return real_sync(folder)

    monkeypatch.setattr(GroupCommit, "_commit", commit)
    monkeypatch.setattr(commit_module, "sync_filesystem", slow_sync)
    start = threading.Barrier(10)

    def one(i: int) -> None:
        start.wait()
        store.ensure(f"dev-{i}", "cn", CONFIG)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(os.listdir(store.root)) == sorted(["first"] + [f"dev-{i}" for i in range(10)])
    assert store.written == 11
    assert sum(len(batch) for batch in rounds) == 10 and 2 <= len(rounds) < 10
    assert max(len(batch) for batch in rounds) >= 5  # those who waited went together
    assert checked == [True] * len(rounds)
    for i in range(10):
        folder = store.root / f"dev-{i}"
        assert folder.stat().st_mode & 0o777 == 0o700
        assert sorted(os.listdir(folder)) == ["cert.pem", "iotcDeviceConfig.json", "key.pem"]
        assert (folder / "key.pem").stat().st_mode & 0o777 == 0o600


def test_the_run_that_places_a_folder_second_uses_the_first_ones_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = KeyStore(tmp_path / "keys"), KeyStore(tmp_path / "keys")
    real = GroupCommit.place
    first: list[object] = []

    def raced(self: GroupCommit, staged: Path, final: Path) -> bool:
        if self is ours._commit:  # the other run places the device while ours syncs
            first.append(theirs.ensure(final.name, "cn", CONFIG))
        return real(self, staged, final)

    monkeypatch.setattr(GroupCommit, "place", raced)
    got = ours.ensure("dev-1", "cn", CONFIG)
    assert got.reused and got.certificate_pem == first[0].certificate_pem  # type: ignore[attr-defined]
    assert ours.written == 0 and theirs.written == 1
    assert _staged(ours.root) == []  # the loser's staged folder is gone


def test_a_failed_sync_places_nothing_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path / "keys")

    def broken(folder: Path) -> bool:
        raise OSError(5, "Input/output error", str(folder))

    monkeypatch.setattr(commit_module, "sync_filesystem", broken)
    with pytest.raises(OSError, match="Input/output error"):
        store.ensure("dev-1", "cn", CONFIG)
    assert os.listdir(store.root) == [] and store.written == 0


def test_without_syncfs_every_file_and_the_folder_are_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path / "keys", attest_key=b"k" * 32)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(safefile, "_SYNCFS", [None])  # a platform without syncfs
    monkeypatch.setattr(os, "fsync", fsync)
    store.ensure("dev-1", "cn", CONFIG)
    names = sorted(Path(p).name for p in synced)
    assert len([n for n in names if n.startswith(STAGING)]) == 1  # the staged folder
    assert sorted(n for n in names if not n.startswith(STAGING)) == sorted(
        ["attestation", "cert.pem", "iotcDeviceConfig.json", "key.pem", store.root.name])
    assert store.attested("dev-1", (store.root / "dev-1" / "cert.pem").read_text())


def test_a_run_killed_before_the_sync_leaves_no_device_folder_and_the_next_makes_one(
        tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    child = ("import os, sys; from pathlib import Path; "
             "from iotc_apply.keystore import KeyStore, commit; "
             "commit.sync_filesystem = lambda folder: os._exit(9); "  # killed: no cleanup
             "KeyStore(Path(sys.argv[1])).ensure('dev-1', 'cn', {'uid': 'dev-1'})")
    assert subprocess.run([sys.executable, "-c", child, str(keys)]).returncode == 9
    left = _staged(keys)
    assert len(left) == 1 and not (keys / "dev-1").exists()
    store = KeyStore(keys)
    assert store.duids() == frozenset() and store.folders() == frozenset()
    made = store.ensure("dev-1", "cn", CONFIG)
    assert not made.reused and (keys / "dev-1" / "key.pem").is_file()
    assert _staged(keys) == left  # young: it might be another run's, busy
    assert store.duids() == frozenset({"dev-1"})


def test_staging_folders_of_dead_runs_are_swept_and_nothing_else(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    old, young = keys / f"{STAGING}dev-1.abc", keys / f"{STAGING}dev-2.def"
    for folder in (old, young):
        folder.mkdir()
        (folder / "key.pem").write_text("never registered")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (old / "link").symlink_to(outside)
    planted = keys / f"{STAGING}planted"
    planted.symlink_to(outside)
    stale = time.time() - STALE_AFTER - 60
    os.utime(old, (stale, stale))
    os.utime(planted, (stale, stale), follow_symlinks=False)
    KeyStore(keys).ensure("dev-3", "cn", CONFIG)
    assert not old.exists() and young.is_dir() and planted.is_symlink()
    assert (outside / "precious").read_text() == "x"


def test_sealed_keys_are_staged_sealed(tmp_path: Path, identity: tuple[Path, str]) -> None:
    from iotc_apply.keystore import identities, private_key, recipients

    path, recipient = identity
    store = KeyStore(tmp_path / "keys", sealed_to=recipients([recipient]))
    made = store.ensure("dev-1", "cn", CONFIG)
    folder = tmp_path / "keys" / "dev-1"
    assert sorted(os.listdir(folder)) == ["cert.pem", "iotcDeviceConfig.json", "key.pem.age"]
    assert made.key_path == folder / "key.pem.age" and not made.reused
    key = serialization.load_pem_private_key(private_key(store, "dev-1", identities(path)),
                                             password=None)
    cert = x509.load_pem_x509_certificate(made.certificate_pem.encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_a_file_where_the_folder_goes_is_refused_by_the_kept_key_path(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.root.mkdir(mode=0o700)
    (store.root / "dev-1").symlink_to(tmp_path)
    with pytest.raises(KeyStoreError, match="is a symlink"):
        store.ensure("dev-1", "cn", CONFIG)
    assert _staged(store.root) == []
