"""`iotc completion`: a shell completion script generated from the parser (shtab)."""

from __future__ import annotations

import argparse
import sys

from .context import EXIT_OK, Invocation
from .root import AddParser


def register(add: AddParser) -> None:
    parser = add("completion", api=False, help="print a shell completion script (bash, zsh)")
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    import shtab

    from .root import build_parser

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK
