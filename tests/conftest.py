"""Shared fixtures: a real emulator on 127.0.0.1, raw HTTP access to it, and the client."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotc_apply.client import IoTConnect
from iotc_apply.client.session import ApiSession
from iotc_apply.client.settings import Settings, TokenStore
from iotc_apply.emulator import EmulatorServer

TEMPLATE_JSON: dict[str, Any] = {
    "code": "sensor01", "name": "Sensor", "authType": 3, "messageVersion": "2.1",
    "attributes": [{"name": "temperature", "type": "DECIMAL", "unit": "C"}],
    "commands": [{"name": "Reboot", "command": "reboot", "requiredParam": False,
                  "requiredAck": True, "isOTACommand": False}],
    "msgCode": "", "greenGrass": "0", "wireless": "0",
    "properties": {"description": None, "dataFrequency": "60", "fileSupport": False},
    "_meta": {"version": "2.0"},
}


def self_signed_pem(cn: str) -> str:
    """A throwaway self-signed EC certificate (its key is discarded)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Raw:
    """Plain HTTP against the emulator, logged in, to check wire-level behaviour."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        acc = server.emulator.state.account
        disc = requests.get(f"{server.discovery_url}/solutionkey/{acc.solution_key}/env/"
                            f"{acc.env}", params={"pf": acc.pf, "version": "2.1"}, timeout=10)
        self.urls = disc.json()["data"]
        basic = requests.get(self.urls["authBaseUrl"] + "/Auth/basic-token", timeout=10)
        login = requests.post(self.urls["authBaseUrl"] + "/Auth/login", timeout=10,
                              headers={"Authorization": "Basic " + basic.json()["data"],
                                       "Solution-key": acc.solution_key},
                              json={"username": acc.user_email, "password": acc.user_password})
        self.tokens = login.json()
        self.headers = {"Authorization": "Bearer " + self.tokens["access_token"]}

    def __call__(self, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.urls[f"{service}BaseUrl"] + path, headers=headers,
                                timeout=10, **kwargs)

    def template(self, **overrides: Any) -> str:
        import json

        body = {**TEMPLATE_JSON, **overrides}
        resp = self("POST", "device", "/device-template/quick",
                    files={"file": ("t.json", json.dumps(body).encode())})
        assert resp.status_code == 200, resp.text
        return resp.json()["data"][0]["deviceTemplateGuid"].upper()

    def firmware(self, template: str, name: str = "SENSFW") -> dict[str, str]:
        """Create a firmware (and its first upgrade, 1.0.0); its `newId` and upgrade GUID."""
        resp = self("POST", "firmware", "/Firmware", json={
            "deviceTemplateGuid": template, "firmwareName": name, "hardware": "1.0",
            "software": "1.0.0"})
        assert resp.status_code == 200, resp.text
        return resp.json()["data"][0]

    def root(self) -> str:
        return next(e["guid"] for e in self("GET", "user", "/Entity").json()["data"]
                    if e["parentEntityGuid"] is None)

    def device(self, template: str, duid: str, **extra: Any) -> requests.Response:
        body = {"deviceTemplateGuid": template, "uniqueId": duid, "displayName": duid,
                "entityGuid": self.root(), "certificateText": self_signed_pem(duid), **extra}
        return self("POST", "device", "/Device", json=body)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as s:
        yield s
    # A request the emulator's rules could not read is answered 400; outside the tests that
    # send malformed requests on purpose (they clear this), it means an emulator bug.
    assert s.emulator.unreadable == [], s.emulator.unreadable


@pytest.fixture
def raw(server: EmulatorServer) -> Raw:
    return Raw(server)


def account_keys(server: EmulatorServer, keys_dir: Path) -> Path:
    """The emulated account's folder in a key store (`KEYS_DIR/<cpId>-<env>`)."""
    acc = server.emulator.state.account
    return keys_dir / f"{acc.cpid}-{acc.env}"


def settings_for(server: EmulatorServer, config_dir: Path, **overrides: Any) -> Settings:
    acc = server.emulator.state.account
    base = dict(discovery_url=server.discovery_url, skey=acc.solution_key, env=acc.env,
                pf=acc.pf, username=acc.user_email, password=acc.user_password,
                config_dir=config_dir, timeout=10.0)
    return Settings(**{**base, **overrides})


@pytest.fixture
def settings(server: EmulatorServer, tmp_path: Path) -> Settings:
    return settings_for(server, tmp_path / "config")


@pytest.fixture
def api(settings: Settings) -> IoTConnect:
    return IoTConnect(ApiSession(settings, TokenStore.for_settings(settings)))


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
