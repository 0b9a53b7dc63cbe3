"""What tests share that is not a fixture: the template JSON, a throwaway certificate, raw HTTP
to the emulator, pointing the CLI at it, and reading its state. Fixtures are in conftest.py;
test modules import helpers from here and never from each other."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotc_apply.cli import main
from iotc_apply.client import IoTConnect
from iotc_apply.client.settings import Settings
from iotc_apply.emulator import EmulatorServer
from iotc_apply.model import DesiredAttribute, DesiredCommand, DesiredTemplate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "manifests"

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


def point_cli_at(server: EmulatorServer, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's environment for the emulator: discovery, solution key, login, config."""
    for name, value in env_for(server, config, {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_COLOR", raising=False)


def env_for(server: EmulatorServer, config: Path,
            base: dict[str, str] | None = None) -> dict[str, str]:
    """A subprocess's environment pointed at the emulator (`base` defaults to this one's)."""
    acc = server.emulator.state.account
    return {**(os.environ if base is None else base),
            "IOTC_DISCOVERY_URL": server.discovery_url, "IOTC_SKEY": acc.solution_key,
            "IOTC_USER": acc.user_email, "IOTC_PASS": acc.user_password,
            "IOTC_CONFIG_DIR": str(config)}


def iotc(*args: str) -> int:
    """The CLI in this process, with the key store in ./keys."""
    return main([*args, "--keys-dir", "keys"])


def live(server: EmulatorServer) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """Every record the emulator holds, by kind."""
    return server.emulator.state.store.dump()


def template(code: str = "sensor01", name: str = "Sensor", **changes: Any) -> DesiredTemplate:
    """TEMPLATE_JSON as the model value the client creates templates from."""
    base = DesiredTemplate(
        code, name, "self-signed", "2.1",
        (DesiredAttribute("temperature", "DECIMAL", "C"),),
        (DesiredCommand("Reboot", "reboot", required_ack=True),))
    return dataclasses.replace(base, **changes)


def make_template(api: IoTConnect, code: str, attributes: int = 1) -> str:
    """A template with `attributes` INTEGER attributes; its GUID."""
    return api.templates.create(template(code, code, attributes=tuple(
        DesiredAttribute(f"a{i}", "INTEGER") for i in range(attributes))))


def steady(text: str) -> str:
    """Command output without what this machine's speed decides: the plan's estimate of
    an apply follows the latency the emulator answered with."""
    return re.sub(r"~\d+ (s|min|h) \(\d+ ms per request", "~<time> (<latency> per request",
                  text)
