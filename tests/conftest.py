"""Shared fixtures: a real emulator on 127.0.0.1 (served once per test process, reset for
every test), raw HTTP access to it, the client, the CLI pointed at it, an age identity."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotc_apply.client import IoTConnect
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore
from iotc_apply.emulator import Account, EmulatorServer, Knobs, Limits

from .support import EXAMPLES, Raw, point_cli_at, settings_for


@pytest.fixture(scope="session")
def served() -> Iterator[EmulatorServer]:
    """One emulator for the whole run (per test process): starting one per test cost ~10 s."""
    with EmulatorServer() as s:
        yield s


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """The served emulator as new: the seed account again (new signing secret, so no token of
    an earlier test is accepted), default limits and knobs, counters at zero. A test marked
    `own_server` (it stops the server) gets one of its own."""
    if request.node.get_closest_marker("own_server"):
        with EmulatorServer() as own:
            yield own
        return
    served: EmulatorServer = request.getfixturevalue("served")
    emu = served.emulator
    emu.stopping.set()  # requests an earlier test left held (latency, hang) end now
    _settle_stragglers()
    emu.stopping.clear()
    emu.state.ctx.limits, emu.state.ctx.clock = Limits(), time.time
    emu.state.account = Account()
    emu.state.reset()
    emu.traffic.configure(Knobs())
    emu.traffic.reset_counts()
    emu.unreadable.clear()
    yield served
    # A request the emulator's rules could not read is answered 400; outside the tests that
    # send malformed requests on purpose (they clear this), it means an emulator bug.
    assert emu.unreadable == [], emu.unreadable


def _settle_stragglers() -> None:
    """A command that stops early (manifest errors) leaves its snapshot's daemon workers to
    finish their requests (`snapshot._DaemonPool`: `iotc` must not wait for them); in a test
    process they would reach the next test's emulator and its counters (a login counted
    twice, once). Wait for them (at most 2 s in all) before the emulator is reset."""
    deadline = time.monotonic() + 2
    for thread in threading.enumerate():
        if thread.name.startswith("iotc-snapshot-"):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


@pytest.fixture
def raw(server: EmulatorServer) -> Raw:
    return Raw(server)


@pytest.fixture
def settings(server: EmulatorServer, tmp_path: Path) -> Settings:
    return settings_for(server, tmp_path / "config")


@pytest.fixture
def api(settings: Settings) -> IoTConnect:
    return IoTConnect(ApiSession(settings, TokenStore.for_settings(settings)))


@pytest.fixture
def work(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the examples to edit, the CLI pointed at the emulator, keys in tmp."""
    point_cli_at(server, tmp_path / "config", monkeypatch)
    shutil.copytree(EXAMPLES, tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def _applied_once() -> dict[str, object]:
    return {}


@pytest.fixture
def applied(work: Path, server: EmulatorServer, _applied_once: dict[str, object],
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`work` with the examples applied: by the CLI the first time in a test process, then
    as a copy of that account and key store (the same GUIDs, dates and keys), so tests that
    start from an applied fleet do not each pay for applying 65 objects."""
    from .support import iotc

    if not _applied_once:
        assert iotc("apply", "m", "--auto-approve") == 0
        kept = tmp_path_factory.mktemp("applied") / "keys"
        shutil.copytree(work / "keys", kept, symlinks=True)
        _applied_once.update(store=server.emulator.state.store.snapshot(), keys=kept)
        return work
    server.emulator.state.store.restore(_applied_once["store"])  # type: ignore[arg-type]
    server.emulator.state.ctx.forget_secret()  # the snapshot's signing secret is back
    shutil.copytree(_applied_once["keys"], work / "keys", symlinks=True)  # type: ignore[arg-type]
    return work


def pytest_configure(config: pytest.Config) -> None:
    _compiled_once(config)
    _temporary_files_in_memory(config)


def _compiled_once(config: pytest.Config) -> None:
    """The package byte-compiled before any test runs: with PYTHONDONTWRITEBYTECODE set (as
    on these machines) every `iotc` subprocess compiled it again, 0.3 s of CPU each, for
    some 60 subprocesses a run. Reading .pyc files is not affected by the variable."""
    if hasattr(config, "workerinput"):
        return
    import compileall

    import iotc_apply

    compileall.compile_dir(Path(iotc_apply.__file__).parent, quiet=1)


def _temporary_files_in_memory(config: pytest.Config) -> None:
    """Temporary files in memory where the machine has a tmpfs (/dev/shm): the suite writes
    thousands of key files, each made durable with fsync, and on a disk that cost ~7 s of a
    70 s run. What is tested (modes, O_EXCL, symlink refusals, FIFOs) behaves the same
    there. `--basetemp` given on the command line wins; the folder is removed at the end."""
    shm = Path("/dev/shm")
    if config.option.basetemp or hasattr(config, "workerinput") or not shm.is_dir() or \
            not os.access(shm, os.W_OK):
        return
    config.option.basetemp = tempfile.mkdtemp(prefix="iotc-tests-", dir=shm)
    config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record", metavar="DIR", default=None,
                     help="acceptance suite: write vcrpy cassettes of the traffic to DIR, "
                          "secrets scrubbed (tests/vcr_rules.py)")


@pytest.fixture
def identity(tmp_path: Path) -> tuple[Path, str]:
    """An age identity file and its public recipient (`age1...`), for sealed key stores."""
    from pyrage import x25519

    key = x25519.Identity.generate()
    path = tmp_path / "identity.txt"
    path.write_text(f"# made for the test\n{key}\n")
    return path, str(key.to_public())

