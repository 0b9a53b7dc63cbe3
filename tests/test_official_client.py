"""Fidelity bar: the official iotconnect-rest-api 3.0.0 client runs its own flows unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from iotc_apply.emulator import EmulatorServer

FLOW = Path(__file__).with_name("official_flow.py")


def test_official_client_flows_pass_against_the_emulator(server: EmulatorServer,
                                                         tmp_path: Path) -> None:
    acc = server.emulator.state.account
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("IOTC_API_TRACE", None)
    done = subprocess.run(
        [sys.executable, str(FLOW), server.url, acc.solution_key, acc.user_email,
         acc.user_password, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("OFFICIAL FLOW OK")
    counts = server.emulator.traffic.counts
    assert counts["POST /device-template/quick"] == 1 and counts["POST /Device"] == 1
    assert counts["PUT /firmware-upgrade/<guid>/publish"] == 2  # the second one refused
    dump = server.emulator.state.store.dump()
    assert "device" not in dump and "template" not in dump
    assert [f["isDeprecated"] for f in dump["firmware"]] == [True]
