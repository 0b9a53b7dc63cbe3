"""`iotc logout`: forget the stored token."""

from __future__ import annotations

import argparse

from ..ui.console import make_console
from .context import EXIT_OK, Invocation
from .root import AddParser


def register(add: AddParser) -> None:
    add("logout", api=False, help="forget the stored token").set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from ..client.settings import Settings, TokenStore

    removed = TokenStore.for_settings(Settings.from_env(inv.env.values)).clear()
    make_console().print("Logged out." if removed else "Not logged in.")
    return EXIT_OK
