"""`iotc completion`: a shell completion script generated from the parser (shtab).

What an argument completes to is read off the parser, so a new flag completes without a
line here: a `PATH` or `FILE` metavar completes file names, a `DIR` one folder names, and
`get`'s `KIND` the kinds `get` lists (its aliases still work when typed; they are not
offered, so the list stays short)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from .context import EXIT_OK, Invocation
from .root import AddParser

KINDS = ("templates", "devices", "firmware", "upgrades", "rollouts")
KIND_COMPLETION = {"bash": "_iotc_compgen_kinds", "zsh": f"({' '.join(KINDS)})"}
PREAMBLE = {"bash": f"""
# iotc get KIND: the kinds it lists ($1 is the word being completed)
_iotc_compgen_kinds() {{
  compgen -W "{' '.join(KINDS)}" -- "$1"
}}
"""}


def register(add: AddParser) -> None:
    parser = add("completion", api=False, help="print a shell completion script (bash, zsh)")
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    import shtab

    from .root import build_parser

    parser = build_parser()
    for action in _actions(parser):
        metavar = action.metavar if isinstance(action.metavar, str) else ""
        if metavar in ("PATH", "FILE"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        elif metavar == "DIR":
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        elif metavar == "KIND":
            action.complete = KIND_COMPLETION  # type: ignore[attr-defined]
    sys.stdout.write(shtab.complete(parser, shell=args.shell, preamble=PREAMBLE))
    return EXIT_OK


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every argument of the parser and of its commands, depth first."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _actions(sub)
