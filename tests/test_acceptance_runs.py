"""The acceptance suite, run unchanged against `iotc emulator serve`, so it cannot rot.

A real `iotc emulator serve` process on 127.0.0.1 (state in memory); the suite runs in a
child pytest with only the environment a real account would need, the variables the
server prints, plus IOTC_ACCEPTANCE=1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from iotc_apply.client import coverage

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_acceptance_suite_passes_against_a_served_emulator(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "iotc_apply", "emulator", "serve",
                               "--db", ":memory:"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOTC_")}
        assert server.stdout is not None
        for line in server.stdout:
            found = re.match(r"export (IOTC_\w+)='([^']*)'", line.strip())
            if found:
                env[found.group(1)] = found.group(2)
            if "IOTC_PASS" in env:
                break
        env.update(IOTC_ACCEPTANCE="1", IOTC_CONFIG_DIR=str(tmp_path / "config"))
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/acceptance", "--record", str(tmp_path / "cassettes")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
    text = next((tmp_path / "cassettes").glob("acceptance-*.yaml")).read_text()
    # nothing in it identifies the account: cpId, login e-mail, GUIDs, signed URL queries
    assert env["IOTC_USER"] not in text and "0A1B2C3D4E5F60718293A4B5C6D7E8F9" not in text
    guids = set(re.findall(r"\b[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\b", text))
    assert guids and all(g.startswith("00000000-0000-4000-8000-") for g in guids), \
        sorted(guids)[:5]
    assert "sig=" not in text and "se=" not in text
    assert "acceptance summary: run " in run.stderr + run.stdout
    interactions = yaml.safe_load(text)["interactions"]
    seen = {(i["request"]["method"], urlsplit(i["request"]["uri"]).path.split("/api/v2.1")[-1])
            for i in interactions}
    for call in coverage.CALLS:  # every call known only from documentation was exercised
        if call.evidence != coverage.OFFICIAL and call.pf in (None, "aws"):  # served: AWS
            assert any(m == call.method and call.pattern.match(p) for m, p in seen), call
    cassette = text
    for secret in (env["IOTC_PASS"], env["IOTC_SKEY"], "BEGIN EC PRIVATE KEY"):
        assert secret not in cassette, secret
    # a JWT (header.payload.), not the three letters alone: a certificate's base64 holds
    # "eyJ" now and then (it failed CI once, on "...9peyJ5H...")
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.", cassette)
