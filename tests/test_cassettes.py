"""vcrpy cassettes pin the client's wire format for every client call.

The cassette `cassettes/client_calls.yaml` was recorded from the emulator (GUIDs seeded, so a
re-recording diffs cleanly) and replays here with `record_mode="none"` and no server running.
Requests match on method, path, query and body; multipart bodies match on their fields, not
their random boundary; secrets are scrubbed before saving and before comparing.
Re-record with `IOTC_RECORD_CASSETTES=1 pytest tests/test_cassettes.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from iotc_apply.client import IoTConnect
from iotc_apply.client.errors import Conflict
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore
from iotc_apply.emulator import EmulatorServer, Limits
from iotc_apply.model import DesiredAttribute, DesiredCommand, DesiredTemplate

from .vcr_rules import recorder

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
CERT = (Path(__file__).with_name("data") / "device-cert.pem").read_text()
RECORD = bool(os.environ.get("IOTC_RECORD_CASSETTES"))
REPLAY_DISCOVERY = "http://127.0.0.1:9/api/uisdk"  # never contacted: vcr answers


def every_client_call(api: IoTConnect) -> None:
    """Each resource-client method once, with fixed inputs, checking what comes back."""
    api.session.login()
    root = api.entities.root()
    plant = api.entities.create("Plant-Z", root.guid)
    assert api.entities.get(plant) is not None and len(api.entities.list()) == 4
    me = api.users.by_email("admin@example.com")
    assert me and api.users.get(me.guid) and [u.email for u in api.users.list()] == [me.email]

    tpl = api.templates.create(DesiredTemplate(
        "cas01", "Cassette", "self-signed", "2.1", (DesiredAttribute("temp", "DECIMAL"),),
        (DesiredCommand("Reboot", "reboot"),)))
    assert api.templates.get_by_code("cas01").guid == tpl  # type: ignore[union-attr]
    assert [t.code for t in api.templates.list()] == ["cas01"]
    attr = api.templates.create_attribute(tpl, DesiredAttribute("hum", "INTEGER"))
    api.templates.update_attribute(attr, tpl, DesiredAttribute("hum", "DECIMAL", "%"))
    cmd = api.templates.create_command(tpl, DesiredCommand("Blink", "blink"))
    api.templates.update_command(cmd, tpl, DesiredCommand("Blink twice", "blink"))
    assert [a.name for a in api.templates.attributes(tpl)] == ["temp", "hum"]
    assert [c.command for c in api.templates.commands(tpl)] == ["reboot", "blink"]
    api.templates.delete_command(cmd)
    api.templates.delete_attribute(attr)
    api.templates.rename(tpl, "Cassette 2")
    assert api.templates.get(tpl).name == "Cassette 2"  # type: ignore[union-attr]

    dev = api.devices.create(tpl, "cas-dev-1", "Cassette device", root.guid, CERT)
    with pytest.raises(Conflict):
        api.devices.create(tpl, "cas-dev-1", "Again", root.guid, CERT)
    api.devices.update(dev, "cas-dev-1", "Renamed device", plant)
    api.devices.set_active(dev, "cas-dev-1", False)
    assert api.devices.get(dev).active is False  # type: ignore[union-attr]
    assert api.devices.get_by_duid("cas-dev-1").display_name == "Renamed device"  # type: ignore
    assert [d.duid for d in api.devices.list(tpl)] == ["cas-dev-1"]

    fw, first = api.firmware.create(tpl, "CASFW", "1.0", "1.0.0", "fw", "first")
    api.files.upload("firmware", first, "fw-1.0.0.bin", b"firmware 1.0.0")
    api.firmware.publish(first)
    second = api.firmware.create_upgrade(fw, "1.1.0", "second")
    api.firmware.update_upgrade(second, fw, "1.1.1", "second, renumbered")
    upload = api.files.upload("firmware", second, "fw-1.1.1.bin", b"firmware 1.1.1")
    assert [f.tag for f in api.files.list("firmware", second)] == [upload.tag]
    api.firmware.update(fw, "CASFW", "1.0", "described")
    assert api.firmware.get(fw).description == "described"  # type: ignore[union-attr]
    assert api.firmware.get_by_name("CASFW").guid == fw  # type: ignore[union-attr]
    assert [f.name for f in api.firmware.list()] == ["CASFW"]
    assert sorted(u.version for u in api.firmware.upgrades(fw)) == ["1.0.0", "1.1.1"]
    assert api.firmware.get_upgrade(second).version == "1.1.1"  # type: ignore[union-attr]
    api.files.delete("firmware", upload.guid)
    api.firmware.delete_upgrade(second)
    api.firmware.deprecate(fw)

    api.devices.delete(dev)
    api.templates.delete(tpl)
    assert api.session.auth.refresh() > 0
    assert api.templates.get_by_code("cas01") is None


def _settings(discovery: str, server: EmulatorServer | None) -> Settings:
    acc = server.emulator.state.account if server else None
    return Settings(discovery_url=discovery, skey="ZW11bGF0b3Itc29sdXRpb24ta2V5", env="poc",
                    pf="aws", username="admin@example.com",
                    password=acc.user_password if acc else "Emulator!234",
                    config_dir=Path("/nonexistent"), max_retries=0)


def test_client_calls_replay_from_the_cassette() -> None:
    cassette = "client_calls.yaml"
    if RECORD:
        with EmulatorServer(limits=Limits(guid_seed=20261122)) as server, \
                recorder(CASSETTES, "all").use_cassette(cassette):
            settings = _settings(server.discovery_url, server)
            every_client_call(IoTConnect(ApiSession(settings, TokenStore(None))))
    assert (CASSETTES / cassette).exists(), "record it: IOTC_RECORD_CASSETTES=1 pytest ..."
    with recorder(CASSETTES).use_cassette(cassette) as played:
        settings = _settings(REPLAY_DISCOVERY, None)
        every_client_call(IoTConnect(ApiSession(settings, TokenStore(None))))
        assert played.all_played


SECRETS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."),  # a JWT
    re.compile(r"PRIVATE KEY"),
    re.compile(r"Emulator!234"),  # the emulator's login password
    re.compile(r"(?i)authorization:|bearer |basic [A-Za-z0-9+/=]{20,}"),
    re.compile(r'"(refresh_token|refreshtoken|password)": "(?!\(redacted\))'),
]


def test_no_cassette_holds_a_token_password_or_private_key() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "no cassettes found"
    for path in files:
        text = path.read_text()
        for pattern in SECRETS:
            assert not pattern.search(text), f"{path.name}: matches {pattern.pattern}"
        assert "(redacted)" in text
