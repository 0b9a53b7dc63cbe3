"""`iotc login`: log in and keep a token (mode 0600); the password is never stored."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..ui.console import make_console
from .context import EXIT_OK, Invocation, Login, UsageError
from .root import AddParser


def register(add: AddParser) -> None:
    parser = add("login", help="log in and store a token (never the password)")
    parser.add_argument("--user", help="account e-mail (default $IOTC_USER)")
    parser.add_argument("--skey", help="solution key (default $IOTC_SKEY)")
    parser.add_argument("--env", help="environment, e.g. poc, prod, avnet (default $IOTC_ENV)")
    parser.add_argument("--pf", choices=("aws", "az"), help="platform (default $IOTC_PF)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (for scripts)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    with inv.connect(Login(args.user, args.skey, args.env, args.pf)) as api:
        password = _stdin_password() if args.password_stdin else \
            inv.env.get("IOTC_PASS") or _prompt_password(inv)
        identity = api.session.login(password=password)
    make_console().print(f"Logged in as {identity.username} (pf={identity.pf}, "
                         f"env={identity.env}, cpId={identity.cpid}).")
    return EXIT_OK


def _stdin_password() -> str:
    """The first line of standard input, without its newline (`echo pw | iotc login`)."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError("--password-stdin: standard input holds no password")
    return line


def _prompt_password(inv: Invocation) -> str | None:
    if inv.emulator_db is not None:
        return None  # the emulator's seed login is used
    if not sys.stdin.isatty():
        raise UsageError("no password: set IOTC_PASS or run 'iotc login' on a terminal")
    return getpass.getpass("IoTConnect password: ")
