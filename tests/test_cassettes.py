"""vcrpy cassettes pin the client's wire format for every client call.

The cassette `cassettes/client_calls.yaml` was recorded from the emulator (GUIDs seeded, so a
re-recording diffs cleanly) and replays here with `record_mode="none"` and no server running.
Requests match on method, path, query and body; multipart bodies match on their fields, not
their random boundary; secrets are scrubbed before saving and before comparing.
Re-record with `IOTC_RECORD_CASSETTES=1 pytest tests/test_cassettes.py`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import vcr
from vcr.request import Request

from iotc_apply.client import IoTConnect
from iotc_apply.client.errors import Conflict
from iotc_apply.client.redact import REDACTED, redact
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore
from iotc_apply.emulator import EmulatorServer, Limits

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
CERT = (Path(__file__).with_name("data") / "device-cert.pem").read_text()
RECORD = bool(os.environ.get("IOTC_RECORD_CASSETTES"))
REPLAY_DISCOVERY = "http://127.0.0.1:9/api/uisdk"  # never contacted: vcr answers
SCRUBBED_HEADERS = ("Authorization", "Solution-key", "Cookie", "Set-Cookie")


def _multipart_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    match = re.search(r"boundary=([^;]+)", content_type)
    if not match:
        return [("raw", body.decode("latin-1"))]
    fields = []
    for part in body.split(b"--" + match.group(1).strip('"').encode())[1:-1]:
        head, _, content = part.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = re.search(rb'name="([^"]*)"(?:; filename="([^"]*)")?', head)
        name = disposition.group(1).decode() if disposition else "?"
        filename = disposition.group(2).decode() if disposition and disposition.group(2) else ""
        fields.append((f"{name}:{filename}", content.decode("latin-1")))
    return sorted(fields)


def normalized_body(request: Request) -> Any:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    content_type = request.headers.get("Content-Type", "") or ""
    if content_type.startswith("multipart/form-data"):
        return _multipart_fields(body, content_type)
    if not body:
        return None
    if "json" in content_type:
        return redact(json.loads(body))
    if "x-www-form-urlencoded" in content_type:
        return sorted(parse_qsl(body.decode()))
    return body


def body_fields(r1: Request, r2: Request) -> None:
    assert normalized_body(r1) == normalized_body(r2), "bodies differ"


LOOPBACK = re.compile(r"http://127\.0\.0\.1:\d+")
STABLE_ROOT = "http://127.0.0.1:9"  # the recording server's random port, made stable


def scrub_request(request: Request) -> Request:
    request.uri = LOOPBACK.sub(STABLE_ROOT, request.uri)
    for header in SCRUBBED_HEADERS:
        request.headers.pop(header, None)
    if "json" in (request.headers.get("Content-Type") or "") and request.body:
        request.body = json.dumps(redact(json.loads(request.body))).encode()
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    for header in SCRUBBED_HEADERS:
        response["headers"].pop(header, None)
    raw = LOOPBACK.sub(STABLE_ROOT, (response["body"].get("string") or b"").decode(
        "utf-8", "replace")).encode()
    response["body"]["string"] = raw
    try:
        body = json.loads(raw)
    except ValueError:
        return response
    if isinstance(body, dict) and str(body.get("message", "")).startswith("Basic token"):
        body["data"] = REDACTED
    response["body"]["string"] = json.dumps(redact(body)).encode()
    return response


def recorder(mode: str = "none") -> vcr.VCR:
    rec = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode=mode,
                  match_on=("method", "path", "query", "body_fields"),
                  before_record_request=scrub_request, before_record_response=scrub_response,
                  decode_compressed_response=True)
    rec.register_matcher("body_fields", body_fields)
    return rec


def every_client_call(api: IoTConnect) -> None:
    """Each resource-client method once, with fixed inputs, checking what comes back."""
    api.session.login()
    root = api.entities.root()
    plant = api.entities.create("Plant-Z", root.guid)
    assert api.entities.get(plant) is not None and len(api.entities.list()) == 4
    me = api.users.by_email("admin@example.com")
    assert me and api.users.get(me.guid) and [u.email for u in api.users.list()] == [me.email]

    tpl = api.templates.create({"code": "cas01", "name": "Cassette", "authType": 3,
                                "attributes": [{"name": "temp", "type": "DECIMAL"}],
                                "commands": [{"name": "Reboot", "command": "reboot"}]})
    assert api.templates.get_by_code("cas01").guid == tpl  # type: ignore[union-attr]
    assert [t.code for t in api.templates.list()] == ["cas01"]
    attr = api.templates.create_attribute(tpl, {"name": "hum", "type": "INTEGER"})
    api.templates.update_attribute(attr, tpl, {"name": "hum", "type": "DECIMAL", "unit": "%"})
    cmd = api.templates.create_command(tpl, {"name": "Blink", "command": "blink"})
    api.templates.update_command(cmd, tpl, {"name": "Blink twice", "command": "blink"})
    assert [a.name for a in api.templates.attributes(tpl)] == ["temp", "hum"]
    assert [c.command for c in api.templates.commands(tpl)] == ["reboot", "blink"]
    api.templates.delete_command(cmd)
    api.templates.delete_attribute(attr)
    api.templates.rename(tpl, "Cassette 2")
    assert api.templates.get(tpl).name == "Cassette 2"  # type: ignore[union-attr]

    dev = api.devices.create(tpl, "cas-dev-1", "Cassette device", root.guid, CERT)
    with pytest.raises(Conflict):
        api.devices.create(tpl, "cas-dev-1", "Again", root.guid, CERT)
    api.devices.update(dev, "Renamed device", plant)
    api.devices.set_active(dev, False)
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
    login = api.session._login
    assert login is not None
    api.session._refresh(login)
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
                recorder("all").use_cassette(cassette):
            settings = _settings(server.discovery_url, server)
            every_client_call(IoTConnect(ApiSession(settings, TokenStore(None))))
    assert (CASSETTES / cassette).exists(), "record it: IOTC_RECORD_CASSETTES=1 pytest ..."
    with recorder().use_cassette(cassette) as played:
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
