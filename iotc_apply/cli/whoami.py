"""`iotc whoami`: the account the stored login or the environment reaches."""

from __future__ import annotations

import argparse

from ..ui.console import make_console
from .context import EXIT_OK, Invocation
from .root import AddParser


def register(add: AddParser) -> None:
    add("whoami", help="show the logged-in account").set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    with inv.connect() as api:
        me = api.session.identity()
    out = make_console()
    for label, value in (("account", me.username), ("platform", me.pf),
                         ("environment", me.env), ("cpId", me.cpid),
                         ("instance", "dedicated" if me.dedicated else "shared")):
        out.print(f"{label + ':':<13}{value}")
    return EXIT_OK
