"""`iotc doctor`: one line per check (ok/warn/fail), read-only; exit 1 on any failure."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..client.redact import redact_text
from ..ui.console import make_console
from . import args as shared
from .context import EXIT_ERROR, EXIT_OK, Invocation
from .root import AddParser


def register(add: AddParser) -> None:
    parser = add("doctor", help="check discovery, login, token refresh, clock, list "
                                "permissions and the key store (read-only)")
    shared.keys_dir(parser, "the key store to check")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from .. import doctor
    from ..ui import doctor_report

    with inv.connect() as api:
        checks = doctor.run(api, Path(args.keys_dir), inv.emulator_db is not None)
        redacted = (dataclasses.replace(c, detail=redact_text(c.detail)) for c in checks)
        passed = doctor_report.render(make_console(), redacted)
    return EXIT_OK if passed else EXIT_ERROR
