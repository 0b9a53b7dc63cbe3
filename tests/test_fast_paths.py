"""The shortcuts taken for speed keep every promise the slow paths kept.

A plan starts reading the account before its manifests load, remembers certificate expiries
instead of parsing every certificate, and the emulator runs on cheroot: each is checked here
where it could go wrong (a hanging network, a replaced certificate, a dropped connection).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer, FaultRule, Knobs
from iotc_apply.keystore import EXPIRY_CACHE, KeyStore, device_config, self_signed

from .support import Raw, iotc, self_signed_pem


def _store(tmp_path: Path, n: int = 3) -> KeyStore:
    store = KeyStore(tmp_path / "keys", "CPID-poc")
    for i in range(n):
        store.ensure(f"d{i}", f"CPID-d{i}", device_config(f"d{i}", "CPID", "poc", "aws", False))
    return store


def _short_lived(days: int) -> bytes:
    return self_signed(ec.generate_private_key(ec.SECP256R1()), "cn", days=days).encode()


def test_expiries_are_remembered_and_a_changed_certificate_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    assert store.expiring(30) == frozenset()
    assert (store.root / EXPIRY_CACHE).is_file() and store.duids() == {"d0", "d1", "d2"}

    parsed: list[bytes] = []
    real = x509.load_pem_x509_certificate

    def counting(data: bytes) -> x509.Certificate:
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(x509, "load_pem_x509_certificate", counting)
    assert store.expiring(30) == frozenset() and parsed == []  # all three from the cache

    replaced = store.folder("d1") / "cert.pem"
    tmp = replaced.with_name("new.pem")
    tmp.write_bytes(_short_lived(5))
    os.replace(tmp, replaced)  # a new file (new inode)
    with open(store.folder("d2") / "cert.pem", "wb") as f:  # edited in place
        f.write(_short_lived(10))
    assert store.expiring(30) == {"d1", "d2"} and len(parsed) == 2
    assert store.expiring(7) == {"d1"} and len(parsed) == 2


@pytest.mark.parametrize("cache", ["not json", '{"version": 1, "certificates": {"d0": '
                                   '[1, 2, 3, 9999999999]}}', '{"version": 1, "certificates":'
                                   ' {"d0": ["x", 1, 2, 3]}}', "[]", '{"version": 7}'])
def test_a_cache_that_is_wrong_or_not_ours_is_not_believed(tmp_path: Path, cache: str) -> None:
    store = _store(tmp_path, 1)
    (store.folder("d0") / "cert.pem").write_bytes(_short_lived(3))
    (store.root / EXPIRY_CACHE).write_text(cache)
    assert store.expiring(30) == {"d0"}
    kept = json.loads((store.root / EXPIRY_CACHE).read_text())
    assert kept["version"] == 1 and list(kept["certificates"]) == ["d0"]


def test_a_cache_that_cannot_be_written_costs_time_not_the_plan(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    (store.root / EXPIRY_CACHE).mkdir()  # neither readable nor replaceable as a file
    (store.folder("d1") / "cert.pem").write_bytes(_short_lived(3))
    assert store.expiring(30) == {"d1"} and store.duids() == {"d0", "d1"}


def test_manifests_that_do_not_load_do_not_wait_for_the_account(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """The account is read while the manifests load; when they do not load, `iotc` exits
    with their errors at once, not after a login stuck on a network that hangs."""
    (work / "m" / "broken.yaml").write_text("apiVersion: iotc/v1\nkind: Device\n")
    server.emulator.traffic.configure(Knobs(latency_ms=30_000))
    started = time.monotonic()
    assert iotc("plan", "m") == 1
    assert time.monotonic() - started < 15  # the login alone would take 30 s
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "login" not in err
    server.emulator.traffic.configure(Knobs())


def test_only_a_saved_plan_digests_what_it_read(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The digest of every live object a plan read is made only when a plan file needs it:
    a plan shown and forgotten makes none (at 100,000 devices they were ~0.5 s)."""
    from iotc_apply.model import Snapshot

    assert iotc("apply", "m", "--auto-approve") == 0
    digested: list[object] = []
    real = Snapshot.fingerprint

    def counting(self: Snapshot, address: object) -> str:
        digested.append(address)
        return real(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(Snapshot, "fingerprint", counting)
    assert iotc("plan", "m", "--detailed-exitcode") == 0 and digested == []
    assert iotc("plan", "m", "--out", "plan.json") == 0 and len(digested) >= 65
    saved = json.loads((work / "plan.json").read_text())["fingerprint"]
    assert len(saved) == len(digested) and "device/th-lab-01" in saved


def test_a_plan_imports_neither_requests_nor_urllib3(work: Path,
                                                     server: EmulatorServer) -> None:  # noqa: F811
    """Every call of a plan takes the thin path, so requests and urllib3 (~90 ms of every
    command's start) are imported only for what that path does not carry, or an error."""
    import subprocess
    import sys

    from .support import env_for

    env = {k: v for k, v in env_for(server, work / "config").items()
           if not k.lower().endswith("_proxy")}  # a proxy is requests' to reach
    child = ("import sys; from iotc_apply.cli import main; code = main(['plan', 'm', "
             "'--keys-dir', 'keys']); print(code, 'requests' in sys.modules, "
             "'urllib3' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", child], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout + done.stderr


def test_json_output_imports_no_rich_and_help_is_rich_as_before(
        work: Path, server: EmulatorServer) -> None:  # noqa: F811
    """`get -o json` and `validate --format github|json` write text and never a console, so
    rich (~40 ms of imports) stays out; a table and an error line still go through rich, and
    argparse's usage and help through rich_argparse, whose formatter argparse gets only to
    write them."""
    import subprocess
    import sys

    from .support import env_for

    assert iotc("apply", "m", "--auto-approve") == 0
    env = env_for(server, work / "config")
    child = ("import sys; from iotc_apply.cli import main\n"
             "try:\n    code = main({args!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print('\\nRESULT', code, 'rich' in sys.modules, 'rich_argparse' in sys.modules)")

    def run(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", child.format(args=list(args))], cwd=work,
                              env=env, capture_output=True, text=True, timeout=120)
        return done.stdout.rsplit("RESULT", 1)[-1].split()

    assert run("get", "devices", "-o", "json") == ["0", "False", "False"]
    assert run("get", "devices") == ["0", "True", "False"]
    assert run("get", "nothing") == ["1", "True", "False"]  # our one-line error: a console
    assert run("get", "devices", "--bogus") == ["1", "True", "True"]  # argparse's usage
    assert run("get", "--help") == ["0", "True", "True"]
    assert run("validate", "m", "--format", "github") == ["0", "False", "False"]
    assert run("validate", "m", "--format", "json") == ["0", "False", "False"]
    assert run("validate", "m") == ["0", "True", "False"]


def test_a_refused_login_is_reported_after_the_manifests_load(
        work: Path, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IOTC_PASS", "wrong")
    assert iotc("plan", "m") == 1
    assert "login refused" in capsys.readouterr().err
    (work / "m" / "broken.yaml").write_text("apiVersion: iotc/v1\nkind: Device\n")
    assert iotc("plan", "m") == 1
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "login refused" not in err


def test_the_emulator_keeps_connections_alive_and_a_drop_closes_only_its_own(
        server: EmulatorServer) -> None:
    acc = server.emulator.state.account
    path = f"/api/uisdk/solutionkey/{acc.solution_key}/env/{acc.env}?pf={acc.pf}&version=2.1"
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", path)
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    assert first.status == 200 and first.version == 11 and not first.will_close
    conn.request("GET", path)
    again = conn.getresponse()
    again.read()
    assert again.status == 200 and conn.sock is sock  # the same TCP connection

    urls = json.loads(first_body(server, path))["data"]
    basic = urls["authBaseUrl"].split(str(server.port), 1)[1] + "/Auth/basic-token"
    server.emulator.traffic.configure(Knobs(faults=[FaultRule("GET /Auth/basic-token", 1.0,
                                                              ("drop",), limit=1)]))
    other = http.client.HTTPConnection(server.host, server.port, timeout=10)
    other.request("GET", basic)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        other.getresponse()
    conn.request("GET", basic)  # the first connection is untouched by the drop
    assert conn.getresponse().status == 200 and conn.sock is sock
    server.emulator.traffic.configure(Knobs())


def first_body(server: EmulatorServer, path: str) -> bytes:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse().read()


def test_a_client_pool_of_32_connections_is_kept_alive(server: EmulatorServer) -> None:
    """cheroot alone keeps 10 connections alive and closes the rest after each answer."""
    acc = server.emulator.state.account
    path = f"/api/uisdk/solutionkey/{acc.solution_key}/env/{acc.env}?pf={acc.pf}&version=2.1"
    pool = [http.client.HTTPConnection(server.host, server.port, timeout=10)
            for _ in range(32)]
    for conn in pool:
        conn.request("GET", path)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200 and not answer.will_close
    sockets = [conn.sock for conn in pool]
    for conn in pool:
        conn.request("GET", path)
        conn.getresponse().read()
    assert [conn.sock for conn in pool] == sockets


@pytest.mark.own_server
def test_stopping_the_emulator_ends_a_request_held_by_latency(server: EmulatorServer) -> None:
    """A request held for 30 s (the latency knob) ends when the server stops; cheroot alone
    would wait it out."""
    import threading

    raw = Raw(server)
    server.emulator.traffic.configure(Knobs(latency_ms=30_000))
    held = threading.Thread(target=lambda: _quietly(raw, "GET", "user", "/Entity"),
                            daemon=True)
    held.start()
    time.sleep(0.3)  # the request is in the server, asleep
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    held.join(5)
    assert not held.is_alive()


@pytest.mark.own_server
def test_a_hundred_requests_at_once_wait_the_latency_not_in_a_queue(
        server: EmulatorServer) -> None:
    """The server starts 16 workers and adds more while all are busy: 100 requests held
    1 s each by the latency knob end together (16 fixed workers took 7 rounds, 7 s)."""
    import threading

    from iotc_apply.emulator import server as served

    raw = Raw(server)
    raw("GET", "user", "/Entity")  # log in first: only the listings are timed
    server.emulator.traffic.configure(Knobs(latency_ms=1000))
    start = threading.Barrier(100)
    answers: list[int] = []

    def one() -> None:
        start.wait()
        answers.append(raw("GET", "user", "/Entity").status_code)

    threads = [threading.Thread(target=one) for _ in range(100)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    took = time.monotonic() - started
    server.emulator.traffic.configure(Knobs())
    assert answers == [200] * 100
    assert len(server._server.requests._threads) >= 100 > served.THREADS
    assert took < 3.5, f"{took:.1f} s: requests queued behind busy workers"


def _quietly(raw: Raw, *args: str) -> None:
    import requests

    with contextlib.suppress(requests.RequestException):
        raw(*args)


def test_big_listings_share_a_page_budget_and_every_device_is_read(
        server: EmulatorServer, api: IoTConnect, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four templates each needing a full window of pages: at most two list at once (more
    only add contending threads), nothing waits forever, no device is missed."""
    import threading

    from iotc_apply import snapshot

    from .support import make_template

    root = api.entities.root().guid
    for t in range(4):
        template = make_template(api, f"big{t}")
        for i in range(34):  # 17 pages of 2: a full window of 16
            api.devices.create(template, f"b{t}-{i:02}", "d", root,
                               self_signed_pem(f"b{t}-{i:02}"))
    active, most, lock = [0], [0], threading.Lock()
    def listing(self: object, *args: object, **kwargs: object) -> object:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return list(real_list(self, *args, **kwargs))
        finally:
            with lock:
                active[0] -= 1

    from iotc_apply.client.devices import DevicesClient

    real_list = DevicesClient.list
    monkeypatch.setattr(DevicesClient, "list", listing)
    server.emulator.traffic.configure(Knobs(latency_ms=5))
    snap = snapshot.take(api, None, None, page_size=2)
    assert len(snap.devices) == 4 * 34
    assert most[0] == 2


def test_the_emulator_builds_urls_from_its_rules_though_their_builders_are_made_late() -> None:
    """Rule builders are compiled at the first build, not when the app is made: a build
    with and without arguments the rule does not name still gives werkzeug's URLs, and a
    wrong build still fails as werkzeug fails it."""
    from flask import url_for
    from werkzeug.routing import BuildError

    from iotc_apply.emulator.app import create_app

    app = create_app()
    rule = next(app.url_map.iter_rules("_download"))
    assert "_Rule" in rule._build_unknown.__qualname__  # not compiled: ours is called
    with app.test_request_context():
        assert url_for("_download", guid="AB C", name="f.bin") == "/_files/AB%20C/f.bin"
        assert url_for("_download", guid="A", name="f", v=2) == "/_files/A/f?v=2"
        assert url_for("_download", guid="B", name="g") == "/_files/B/g"
        assert "_Rule" not in rule._build_unknown.__qualname__  # compiled at the first
        with pytest.raises(BuildError):
            url_for("_download", guid="A")


def test_emulator_pages_are_the_rows_offset_gives_with_filters_and_deletions() -> None:
    """A page past the first is read from its first row found in the index: the same rows
    OFFSET gives, in order, for any filter, after deletions leave gaps in the ids, and
    an empty page past the end."""
    from iotc_apply.emulator.store import Store

    store = Store(":memory:")
    with store.transaction():
        for i in range(257):
            store.insert("device", {"guid": f"G{i}", "n": i, "even": i % 2 == 0},
                         nkey=f"d{i:03}", parent="T1" if i % 3 else "T2")
        for i in range(0, 257, 7):
            store.delete("device", f"G{i}")
        store.insert("template", {"guid": "T1"}, nkey="t1")

    def plain(where: list[tuple[str, object]], limit: int, offset: int) -> list[int]:
        sql = "SELECT body FROM obj WHERE kind = ?" + "".join(f" AND {f}" for f, _ in where)
        rows = store._db.execute(sql + " ORDER BY id LIMIT ? OFFSET ?",
                                 ["device", *(v for _, v in where), limit, offset])
        return [json.loads(r[0])["n"] for r in rows.fetchall()]

    for where in ([], [("parent = ?", "T1")], [("json_extract(body, '$.even') = ?", 1)],
                  [("parent = ?", "T2"), ("instr(nkey, ?) > 0", "1")]):
        for limit in (1, 10, 100):
            for offset in (0, 1, 9, 10, 99, 100, 150, 219, 220, 256, 1000):
                got = [r["n"] for r in store.query("device", where, "id", limit, offset)]
                assert got == plain(where, limit, offset), (where, limit, offset)
    assert [r["n"] for r in store.query("device", [], "id DESC", 3, 5)] == [250, 249, 248]
