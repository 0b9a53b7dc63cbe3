"""The client layer against the emulator over real HTTP: paging, retries, auth, errors."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import pytest

from iotc_apply.client import IoTConnect
from iotc_apply.client.errors import (
    ConfigError,
    Conflict,
    ServerError,
    TransportError,
)
from iotc_apply.client.firmware import firmware_from_wire
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore
from iotc_apply.client.templates import aggregates_from_wire
from iotc_apply.emulator import EmulatorServer, FaultRule, Knobs
from iotc_apply.model import DesiredAttribute, DesiredCommand

from .support import make_template, self_signed_pem, settings_for, template


def stats(server: EmulatorServer) -> dict[str, int]:
    return dict(server.emulator.traffic.counts)


class Sleeps(list):  # type: ignore[type-arg]
    """Records every backoff; really sleeps only when asked to."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.real:
            time.sleep(seconds)


def client(settings: Settings, sleeps: Sleeps | None = None, **kw: object) -> IoTConnect:
    session = ApiSession(settings, TokenStore.for_settings(settings),
                         sleep=sleeps if sleeps is not None else Sleeps(), **kw)  # type: ignore
    return IoTConnect(session)


def test_every_listing_is_complete_when_the_server_caps_pages_at_7(
        server: EmulatorServer, api: IoTConnect) -> None:
    templates = [make_template(api, f"tpl{i:02d}", attributes=16 if i == 0 else 1)
                 for i in range(15)]
    root = api.entities.root()
    for i in range(23):
        api.devices.create(templates[i % 2], f"dev-{i:03d}", f"Device {i}", root.guid,
                           self_signed_pem(f"dev-{i:03d}"))
    fw_guids = [api.firmware.create(t, f"FW{i:02d}X", "1.0", "1.0.0")[0]
                for i, t in enumerate(templates[:9])]
    for v in range(1, 10):
        api.firmware.create_upgrade(fw_guids[0], f"1.0.{v}")
    server.emulator.state.limits.max_page_size = 7

    assert len(list(api.templates.list(page_size=100))) == 15
    assert len({d.duid for d in api.devices.list(page_size=100)}) == 23
    assert len({d.duid for d in api.devices.list(templates[1], page_size=100)}) == 11
    assert len(list(api.firmware.list(page_size=100))) == 9
    assert len(list(api.firmware.upgrades(fw_guids[0], page_size=100))) == 10
    assert len(api.templates.attributes(templates[0])) == 16
    # /Device reports no total: the listing ended on an empty page, not a short one.
    assert stats(server)["GET /Device"] == 4 + 1 + 2 + 1


def test_a_listing_that_never_ends_is_an_error_not_a_hang(
        server: EmulatorServer, api: IoTConnect, monkeypatch: pytest.MonkeyPatch) -> None:
    root = api.entities.root()
    template = make_template(api, "tpl01")
    for i in range(3):
        api.devices.create(template, f"dev-{i}", f"Device {i}", root.guid,
                           self_signed_pem(f"dev-{i}"))
    server.emulator.state.limits.repeat_pages = True  # every pageNumber answers page 1
    with pytest.raises(TransportError, match="page 2 repeats page 1"):
        list(api.devices.list(page_size=2))
    server.emulator.state.limits.repeat_pages = False
    monkeypatch.setattr("iotc_apply.client.session.MAX_PAGES", 1)
    with pytest.raises(TransportError, match="more than 1 pages"):
        list(api.devices.list(page_size=2))
    assert len(list(api.devices.list(page_size=3))) == 3  # one full page, then an empty one


def test_pages_a_count_hint_implies_come_concurrently_and_a_wrong_hint_loses_nothing(
        server: EmulatorServer, api: IoTConnect, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    root = api.entities.root()
    template = make_template(api, "tpl01")
    for i in range(25):
        api.devices.create(template, f"dev-{i:02d}", f"Device {i}", root.guid,
                           self_signed_pem(f"dev-{i:02d}"))
    server.emulator.traffic.configure(Knobs(latency_ms=30))
    active, most, lock = [0], [0], threading.Lock()
    real = api.session.call

    def counting(*args: object, **kwargs: object) -> object:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return real(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(api.session, "call", counting)
    duids = [d.duid for d in api.devices.list(template, page_size=5, expect=25)]
    assert duids == [f"dev-{i:02d}" for i in range(25)] and most[0] > 1  # in order, overlapped
    most[0] = 0
    assert len(list(api.devices.list(template, page_size=5, expect=5))) == 25  # hint too low
    assert len(list(api.devices.list(template, page_size=5, expect=100))) == 25  # too high
    server.emulator.traffic.configure(Knobs())
    server.emulator.state.limits.max_page_size = 3  # a silent cap under the hint
    assert len(list(api.devices.list(template, page_size=5, expect=25))) == 25


def test_a_get_that_meets_503_twice_succeeds(server: EmulatorServer, settings: Settings) -> None:
    sleeps = Sleeps()
    api = client(settings, sleeps)
    api.entities.root()  # log in first, so only the listing meets the faults
    server.emulator.traffic.configure(Knobs(faults=[FaultRule("GET /Device", 1.0, ("503",),
                                                              limit=2)]))
    assert list(api.devices.list()) == []
    assert stats(server)["GET /Device"] == 3
    assert len(sleeps) == 2 and sleeps[1] > 0


def test_html_502_and_dropped_connections_on_get_are_retried(
        server: EmulatorServer, settings: Settings) -> None:
    api = client(settings)
    api.entities.root()
    server.emulator.traffic.configure(Knobs(faults=[
        FaultRule("GET /Entity", 1.0, ("html502",), limit=1),
        FaultRule("GET /Entity", 1.0, ("drop",), limit=1)]))
    assert api.entities.root().name == "Emulated Company"
    assert stats(server)["GET /Entity"] == 4


def test_a_post_is_not_retried_blindly(server: EmulatorServer, settings: Settings,
                                       api: IoTConnect) -> None:
    template = make_template(api, "tpl01")
    root = api.entities.root().guid
    server.emulator.traffic.configure(Knobs(faults=[FaultRule("POST /Device", 1.0, ("503",),
                                                              limit=1)]))
    with pytest.raises(ServerError) as failed:
        api.devices.create(template, "dev-1", "D", root, self_signed_pem("dev-1"))
    assert failed.value.ambiguous and stats(server)["POST /Device"] == 1
    assert api.devices.get_by_duid("dev-1") is None

    server.emulator.traffic.configure(Knobs(faults=[
        FaultRule("POST /Device", 1.0, ("commit_then_fail",), limit=1)]))
    with pytest.raises(ServerError) as ambiguous:
        api.devices.create(template, "dev-2", "D", root, self_signed_pem("dev-2"))
    assert ambiguous.value.ambiguous
    assert api.devices.get_by_duid("dev-2") is not None  # stored although the call failed

    server.emulator.traffic.configure(Knobs(faults=[FaultRule("POST /Device", 1.0, ("drop",),
                                                              limit=1)]))
    with pytest.raises(TransportError) as dropped:
        api.devices.create(template, "dev-3", "D", root, self_signed_pem("dev-3"))
    assert dropped.value.ambiguous and stats(server)["POST /Device"] == 3


def test_a_429_with_retry_after_is_honoured(server: EmulatorServer, settings: Settings) -> None:
    sleeps = Sleeps(real=True)
    api = client(settings, sleeps)
    api.entities.root()
    server.emulator.traffic.configure(Knobs(rate_limit=2.0))
    started = time.monotonic()
    for _ in range(4):
        api.entities.list()
    # Retry-After: 1 (whole seconds) was waited out, counted from the 429's arrival
    assert sleeps and min(sleeps) > 0.9
    assert time.monotonic() - started >= 1.0


def test_throttled_requests_wait_together_and_never_fail(
        server: EmulatorServer, settings: Settings) -> None:
    """AIMD: at 5 requests/s, 60 reads from 10 threads all succeed; the limit halved."""
    from concurrent.futures import ThreadPoolExecutor

    api = client(settings, Sleeps(real=True), pool_size=10)
    api.entities.root()
    server.emulator.traffic.configure(Knobs(rate_limit=20.0))
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: api.entities.list(), range(60)))
    assert all(results)
    throttle = api.session.retrying.throttle
    assert throttle.limit < throttle.ceiling and throttle.inflight == 0


def test_a_retry_after_over_the_cap_is_an_error_not_a_silent_wait(
        server: EmulatorServer, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    sleeps = Sleeps()
    api = client(dataclasses.replace(settings, max_retry_after=0.5), sleeps)
    api.entities.root()
    server.emulator.traffic.configure(Knobs(rate_limit=0.01))  # Retry-After: about 100 s
    with pytest.raises(TransportError, match=r"asks to wait \d+ s before trying again "
                                             r"\(more than the 0.5 s allowed"):
        api.entities.list()
    assert sleeps == []


def test_a_read_timeout_on_get_is_retried(server: EmulatorServer, settings: Settings) -> None:
    api = client(Settings(**{**settings.__dict__, "timeout": 0.5}))
    api.entities.root()
    server.emulator.traffic.configure(Knobs(hang_seconds=1.0, faults=[
        FaultRule("GET /Entity", 1.0, ("timeout",), limit=1)]))
    assert api.entities.root().parent_guid is None


def test_401_refreshes_once_and_retries(server: EmulatorServer, api: IoTConnect) -> None:
    api.entities.root()
    login = api.session.auth.current
    assert login is not None
    login.access_token = login.access_token[:-4] + "AAAA"  # signature no longer valid
    assert api.entities.root().parent_guid is None
    assert stats(server)["POST /Auth/refresh-token"] == 1


def test_proactive_refresh_after_an_hour_unless_disabled(server: EmulatorServer,
                                                         settings: Settings) -> None:
    now = [time.time()]
    session = ApiSession(settings, TokenStore.for_settings(settings), clock=lambda: now[0])
    IoTConnect(session).entities.list()
    now[0] += 3601
    IoTConnect(session).entities.list()
    assert stats(server)["POST /Auth/refresh-token"] == 1
    frozen = Settings(**{**settings.__dict__, "token_refresh": False})
    quiet = ApiSession(frozen, TokenStore(None), clock=lambda: now[0])
    IoTConnect(quiet).entities.list()
    now[0] += 3601
    IoTConnect(quiet).entities.list()
    assert stats(server)["POST /Auth/refresh-token"] == 1


def test_token_cache_is_private_reused_and_holds_no_password(
        server: EmulatorServer, settings: Settings, api: IoTConnect) -> None:
    identity = api.session.login()
    path = TokenStore.for_settings(settings).path
    assert path is not None and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert settings.password not in path.read_text()
    bare = Settings(discovery_url=settings.discovery_url, config_dir=settings.config_dir)
    again = IoTConnect(ApiSession(bare))
    assert again.session.identity() == identity
    logins = stats(server)["POST /Auth/login"]
    again.entities.list()
    assert stats(server)["POST /Auth/login"] == logins
    assert again.session.auth.logout() is True and not path.exists()
    with pytest.raises(ConfigError, match="not logged in"):
        IoTConnect(ApiSession(bare)).entities.list()


def test_identity_keeps_the_dedicated_flag_across_refresh(api: IoTConnect) -> None:
    first = api.session.identity()
    assert first.cpid == "0A1B2C3D4E5F60718293A4B5C6D7E8F9" and first.dedicated is False
    assert api.session.auth.refresh() > 0
    assert api.session.identity() == first


def test_errors_name_method_path_message_and_codes(api: IoTConnect) -> None:
    make_template(api, "tpl01")
    with pytest.raises(Conflict) as exc:
        api.templates.create(template("tpl02", "tpl01",
                                      attributes=(DesiredAttribute("a0", "INTEGER"),)))
    text = str(exc.value)
    assert text.startswith("POST /device-template/quick: HTTP 409: ")
    assert "Template name already exists." in text and "DeviceTemplateNameAlreadyExists" in text
    with pytest.raises(Conflict, match="The device doesn't exist"):
        api.devices.delete("00000000-0000-0000-0000-000000000000")
    assert api.templates.get_by_code("nope") is None
    assert api.templates.get("00000000-0000-0000-0000-000000000000") is None


def test_discovery_failure_is_a_clear_config_error(server: EmulatorServer,
                                                   tmp_path: Path) -> None:
    api = client(settings_for(server, tmp_path, skey="wrong"))
    with pytest.raises(ConfigError, match="discovery for pf=aws env=poc failed: HTTP 200: "
                                          "server reported: Solution key"):
        api.entities.list()


def test_trace_redacts_every_secret(server: EmulatorServer, settings: Settings) -> None:
    stream = io.StringIO()
    traced = Settings(**{**settings.__dict__, "trace": True})
    api = IoTConnect(ApiSession(traced, TokenStore.for_settings(traced), trace_stream=stream))
    template = make_template(api, "tpl01")
    api.devices.create(template, "dev-1", "D", api.entities.root().guid, self_signed_pem("d"))
    login = api.session.auth.current
    assert login is not None
    api.session.auth.refresh()
    text = stream.getvalue()
    assert "-> POST" in text and "<- 200" in text and "(redacted)" in text
    for secret in (settings.password, settings.skey, login.access_token, login.refresh_token,
                   api.session.auth.current.access_token):  # type: ignore[union-attr]
        assert secret and secret not in text
    assert "Bearer " not in text and "Authorization" not in text
    basic_line = next(line for line in text.splitlines() if "<- 200 /Auth/basic-token" in line)
    assert '"data": "(redacted)"' in basic_line


def test_firmware_reads_tolerate_both_upgrade_shapes() -> None:
    upgrade = {"guid": "a", "software": "1.0", "isDraft": "Released", "createdby": "u",
               "urls": [{"name": "f.bin", "url": "https://x"}]}
    base = {"guid": "f", "name": "FW", "hardware": "1", "isDeprecated": False,
            "deviceTemplateGuid": "t", "deviceTemplateCode": "c"}
    nested = firmware_from_wire({**base, "Upgrades": {"Upgrade": [upgrade]}})
    flat = firmware_from_wire({**base, "Upgrades": [upgrade]})
    assert nested == flat and nested.upgrades and nested.upgrades[0].draft is False
    assert firmware_from_wire(base).upgrades is None


def test_resource_clients_round_trip(api: IoTConnect, server: EmulatorServer) -> None:
    made = make_template(api, "tpl01")
    assert api.templates.get(made).code == "tpl01"  # type: ignore[union-attr]
    attr = api.templates.create_attribute(made, DesiredAttribute("hum", "integer"))
    api.templates.update_attribute(attr, made, DesiredAttribute("hum", "DECIMAL", "%"))
    assert [(a.name, a.data_type, a.unit) for a in api.templates.attributes(made)] == [
        ("a0", "INTEGER", None), ("hum", "DECIMAL", "%")]
    cmd = api.templates.create_command(made, DesiredCommand("Blink", "blink"))
    api.templates.update_command(cmd, made, DesiredCommand("Blink!", "blink"))
    assert [c.name for c in api.templates.commands(made)] == ["Reboot", "Blink!"]
    api.templates.delete_command(cmd)
    api.templates.delete_attribute(attr)
    api.templates.rename(made, "Renamed")
    child = next(e for e in api.entities.list() if e.name == "Plant-B")
    guid = api.devices.create(made, "dev-1", "One", child.guid, self_signed_pem("x"))
    api.devices.update(guid, "dev-1", "Uno", api.entities.root().guid)
    api.devices.set_active(guid, "dev-1", False)
    # already inactive: still success, read by DUID (AWS shows no GET /Device/{guid})
    server.emulator.traffic.configure(Knobs(missing_routes=("GET /Device/<guid>",)))
    api.devices.set_active(guid, "dev-1", False)
    server.emulator.traffic.configure(Knobs())
    found = api.devices.get_by_duid("dev-1")
    assert found and (found.display_name, found.active) == ("Uno", False)
    fw, first = api.firmware.create(made, "TPLFW", "1.0", "1.0.0", description="d")
    api.files.upload("firmware", first, "fw.bin", b"image")
    api.firmware.publish(first)
    second = api.firmware.create_upgrade(fw, "1.1.0", "next")
    file = api.files.upload("firmware", second, "fw.bin", b"image 2")
    assert api.files.list("firmware", second)[0].tag == file.tag
    api.firmware.update_upgrade(second, fw, "1.2.0", "renumbered")
    api.firmware.update(fw, "TPLFW", "1.0", "new description")
    detail = api.firmware.get(fw)
    assert detail and detail.description == "new description"
    assert sorted(u.version for u in detail.upgrades or ()) == ["1.0.0", "1.2.0"]
    assert api.firmware.get_upgrade(second).version == "1.2.0"  # type: ignore[union-attr]
    api.firmware.delete_upgrade(second)
    api.firmware.deprecate(fw)
    assert api.firmware.get_by_name("TPLFW").deprecated  # type: ignore[union-attr]
    api.files.delete("firmware", file.guid)
    assert api.files.list("firmware", "00000000-0000-0000-0000-000000000000") == ()
    api.devices.delete(guid)
    api.templates.delete(made)
    me = api.users.by_email(api.session.identity().username)
    assert me and me.guid == api.session.identity().user_guid
    assert [u.email for u in api.users.list()] == [me.email]
    assert api.entities.get(api.entities.create("Plant-C", child.guid)).name == "Plant-C"  # type: ignore[union-attr]


def test_empty_child_lists_and_reworded_refusals_read_as_empty(server: EmulatorServer,
                                                                api: IoTConnect) -> None:
    """A 204 for an empty command list and a re-worded 409 for a missing template both mean
    "none", whatever the words (the emulator's `empty_204` and `wording` knobs)."""
    guid = api.templates.create(template("nocmd", "No commands", commands=()))
    server.emulator.traffic.configure(Knobs(wording="terse", empty_204=True))
    assert api.templates.commands(guid) == ()
    assert server.emulator.traffic.counts["GET /template-command/<template_guid>"] == 1
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.templates.commands(missing) == () and api.templates.attributes(missing) == ()
    assert api.devices.get_by_duid("nobody") is None and api.entities.get(missing) is None
    assert api.templates.get_by_code("nocmd") is not None


def test_aggregate_types_read_in_every_shape_the_sources_show() -> None:
    for shape in (["Min", "Max"], [{"name": "Max"}, {"name": "Min"}], {"Min": True,
                                                                         "Max": 1, "Sum": 0}):
        assert aggregates_from_wire(shape) == ("Max", "Min")
    assert aggregates_from_wire(None) == ()


def test_proxies_come_from_the_environment_per_host(
        server: EmulatorServer, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment is read once per session, not per request, and still decides: a
    proxy is used unless NO_PROXY names the host (this one listens nowhere)."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with pytest.raises((ConfigError, TransportError)) as refused:
        client(settings).entities.root()
    assert "127.0.0.1" in str(refused.value)
    assert stats(server).get("GET /Entity") is None  # nothing reached the service
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client(settings).entities.root().name == "Emulated Company"

    import requests

    calls = []
    real = requests.utils.get_environ_proxies

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    for module in (requests.utils, requests.sessions):
        monkeypatch.setattr(module, "get_environ_proxies", counted)
    api = client(settings)
    for _ in range(10):
        api.entities.list()
    assert len(calls) <= 4  # per host and session, not once per request


def test_the_ca_bundle_and_discovery_probe_leave_the_session_as_it_was(
        api: IoTConnect, settings: Settings, tmp_path: Path) -> None:
    """REQUESTS_CA_BUNDLE reaches the transport through the settings (read once); doctor's
    discovery probe asks the service without rewriting the session's settings."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used: the emulator is plain http\n")
    with_ca = Settings.from_env({"REQUESTS_CA_BUNDLE": str(bundle)})
    assert with_ca.ca_bundle == str(bundle)
    assert ApiSession(with_ca, TokenStore(None)).transport.http.verify == str(bundle)
    assert ApiSession(Settings.from_env({}), TokenStore(None)).transport.http.verify is True
    before = api.session.settings
    assert set(api.session.auth.discover()) == {"auth", "user", "device", "firmware", "file"}
    assert api.session.settings is before and api.session.auth.settings is before


def test_a_freed_slot_wakes_one_waiter_not_all() -> None:
    """Issue 32: every release woke every waiting thread (100 threads contending for the GIL
    on every answer); now a release wakes as many as there are free slots."""
    import threading

    from iotc_apply.client.retry import Throttle

    throttle = Throttle(1)
    woken: list[int] = []
    real_notify = throttle._cond.notify

    def notify(n: int = 1) -> None:
        woken.append(n)
        real_notify(n)

    throttle._cond.notify = notify  # type: ignore[method-assign]
    throttle._cond.notify_all = lambda: woken.append(-1)  # type: ignore[method-assign]
    throttle.acquire(lambda s: None)
    waiters = [threading.Thread(target=throttle.acquire, args=(lambda s: None,))
               for _ in range(5)]
    for t in waiters:
        t.start()
    for _ in range(5):
        throttle.release(None)
        deadline = time.monotonic() + 2
        while throttle.inflight == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
    for t in waiters:
        t.join(2)
    assert woken == [1] * 5 and throttle.inflight == 1


def test_the_pool_and_throttle_hold_the_parallelism_asked_for(tmp_path: Path) -> None:
    """`--parallelism 100` must not meet a pool of 32: the client the CLI makes holds
    max(32, p) connections and requests in flight."""
    from iotc_apply.cli.context import Environment, Invocation

    inv = Invocation(Environment({"IOTC_CONFIG_DIR": str(tmp_path)}), tmp_path / "e.db", 0.0)
    for asked, held in ((10, 32), (100, 100)):
        with inv.connect(parallelism=asked) as api:
            assert api.session.transport.pool_size == held
            assert api.session.retrying.throttle.ceiling == held
            assert api.session.transport.thin is not None
            assert api.session.transport.thin.pool.size == held


def test_a_listed_device_says_which_upgrade_it_runs_in_either_spelling() -> None:
    """The AZ list item spells it `firmwareupgradeGuid` (ALV Fixtures.kt), the detail
    `firmwareUpgradeGuid`: both reach the rollouts' "already on the version"."""
    from iotc_apply.client.devices import device_from_wire

    for key in ("firmwareupgradeGuid", "firmwareUpgradeGuid"):
        item = {"guid": "d", "uniqueId": "x", "deviceTemplateGuid": "t", key: "u-1"}
        assert device_from_wire(item).firmware_upgrade == "U-1"
    assert device_from_wire({"guid": "d", "uniqueId": "x"}).firmware_upgrade is None
