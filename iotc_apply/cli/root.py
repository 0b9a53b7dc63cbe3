"""The root of the command line: the parser, strict and helpful, with one subcommand per
verb module (each registers its own flags), `--version` and `--emulator`.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..defaults import DEFAULT_EMULATOR_DB

# the verb modules, in the order `iotc --help` lists them
VERBS = ("validate", "plan", "apply", "destroy", "login", "logout", "whoami", "get", "export",
         "keys", "doctor", "emulator", "completion")


EXIT_USAGE = 1  # a usage error is an error, like any other bad input


class Parser(argparse.ArgumentParser):
    """argparse, strict and helpful: no option abbreviations (`--auto` must never come to
    mean a future option), and a mistyped command or choice gets a "did you mean"."""

    def __init__(self, *args: Any, rich_help: bool = False, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        self.rich_help = rich_help
        super().__init__(*args, **kwargs)

    def format_usage(self) -> str:
        return self._written(super().format_usage)

    def format_help(self) -> str:
        return self._written(super().format_help)

    def _written(self, write: Callable[[], str]) -> str:
        """Help and usage through rich's formatter, made only now: argparse also makes a
        formatter at every `add_argument` (to check it), and rich_argparse and rich are ~40
        ms of imports that a command printing no help need not pay."""
        if not self.rich_help:
            return write()
        from ..ui.console import help_formatter

        stock, self.formatter_class = self.formatter_class, help_formatter()
        try:
            return write()
        finally:
            self.formatter_class = stock

    def error(self, message: str) -> Any:  # type: ignore[override]
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            choices = re.findall(r"'([^']*)'", found[2]) or \
                [c.strip() for c in found[2].split(",")]
            near = difflib.get_close_matches(found[1], choices, n=1, cutoff=0.6)
            if near:
                message += f"; did you mean '{near[0]}'?"
        # exit 1, not argparse's 2: 2 means "changes present" (--detailed-exitcode), and a
        # typo in a CI job's arguments must never read as a plan with changes
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name."""
    parser = Parser(add_help=False)
    parser.add_argument("--emulator", metavar="DB", default=argparse.SUPPRESS,
                        help="run against an in-process emulator whose state is the SQLite "
                             f"file DB (--emulator alone: {DEFAULT_EMULATOR_DB})")
    return parser


HELP: dict[str, tuple[str, str]] = {
    # command: (description, examples)
    "validate": ("Check manifests against their schemas and each other (references, "
                 "duplicates, files). Reads no account: safe in any pull request.",
                 "iotc validate fleet/\niotc validate fleet/devices.yaml fleet/templates.yaml"),
    "plan": ("Compare the manifests with the live account and show what apply would change: "
             "destroys first, then replacements (-/+), updates (~) and creates (+); objects "
             "in the account that nothing declares are listed with ?.",
             "iotc plan fleet/\niotc plan fleet/ --out plan.json      # then: iotc apply "
             "plan.json\niotc plan fleet/ --format markdown > comment.md\n"
             "iotc plan fleet/ --detailed-exitcode  # exit 2 when something would change\n"
             "iotc plan fleet/ --target device/lt-0001"),
    "apply": ("Make the account match the manifests: plan, confirm, execute in dependency "
              "order (independent changes in parallel), then read the account back. With a "
              "saved plan file, apply exactly that plan, only if it is still the plan.",
              "iotc apply fleet/\niotc apply fleet/ --auto-approve        # CI, no terminal\n"
              "iotc apply plan.json --manifests fleet/\niotc --emulator apply examples/manifests"),
    "destroy": ("Delete every declared object that exists, or with --match every live object "
                "whose address matches, declared or not (devices before their template; "
                "firmware is deprecated: IoTConnect cannot delete it). Shows the plan and asks "
                "first; Project.protect globs of the PATHs given still win.",
                "iotc destroy fleet/\niotc destroy fleet/ --var run=pr42 --auto-approve\n"
                "iotc destroy --match 'device/pr*' --match 'template/pr*' fleet/\n"
                "iotc destroy --match 'template/pr*' --older-than 24h --auto-approve"),
    "login": ("Log in and keep a token (mode 0600) in the config folder; the password is "
              "never stored. CI can skip this: IOTC_USER/IOTC_PASS/IOTC_SKEY log in by "
              "themselves.",
              "iotc login --user me@example.com --skey SKEY --env poc --pf aws\n"
              "echo \"$PASSWORD\" | iotc login --user me@example.com --password-stdin"),
    "logout": ("Forget the stored token.", "iotc logout"),
    "whoami": ("Show the account the stored login or the environment reaches.",
               "iotc whoami\niotc --emulator whoami"),
    "get": ("List the account's templates, devices, firmware or upgrades, streamed from the "
            "same list endpoints a plan reads. Fields are stable for scripts (-o json|yaml).",
            "iotc get devices 'lt-*'\niotc get devices --template sensor01 -o wide\n"
            "iotc get upgrades -o json"),
    "export": ("Write manifests for what the account holds, so that validate and plan of "
               "them find nothing to do: adopt an existing account, or back one up. Upgrade "
               "files are downloaded and checked; keys are never written.",
               "iotc export adopted/ && iotc plan adopted/\n"
               "iotc export pumps/ --match 'device/pump-*'"),
    "doctor": ("Check, read-only, everything a run needs: discovery, login, token refresh, "
               "clock, list permissions, the key store. One line per check; exit 1 on a "
               "failure.", "iotc doctor\niotc --emulator doctor"),
    "completion": ("Print a shell completion script generated from this command line.",
                   "iotc completion bash > ~/.local/share/bash-completion/completions/iotc\n"
                   "iotc completion zsh > \"${fpath[1]}/_iotc\""),
    "keys": ("The device key store, plain (key.pem, mode 0600) or sealed (key.pem.age, "
             "encrypted with age to recipients, safe to commit).",
             "iotc keys list\niotc keys verify --identity ~/.age/iotc.txt\n"
             "iotc keys unseal lt-0001 --identity ~/.age/iotc.txt --out provisioning/\n"
             "iotc keys seal --recipient age1..."),
    "emulator": ("The bundled IoTConnect emulator: same paths, casing, status codes and "
                 "refusals as the real service, state in SQLite.",
                 "iotc emulator serve --port 8080"),
}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    shared = common()
    parser = Parser(
        prog="iotc", description="Declarative reconciler for Avnet IoTConnect: keep templates, "
        "devices and firmware in YAML and let plan/apply make the account match.",
        parents=[shared], formatter_class=argparse.RawDescriptionHelpFormatter, rich_help=True,
        epilog="Start offline: iotc --emulator apply examples/manifests --auto-approve")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = _with_parents(sub.add_parser, shared)
    for verb in VERBS:
        importlib.import_module(f"{__package__}.{verb}").register(add)
    return parser


class _Version(argparse.Action):
    """`--version`: the package's `__version__`, the one place the version is written
    (pyproject.toml reads it for the metadata, the action's tag is checked against it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from .. import __version__

        sys.stdout.write(f"{parser.prog} {__version__}\n")
        parser.exit()


AddParser = Callable[..., argparse.ArgumentParser]


def _with_parents(add: Callable[..., Any], shared: argparse.ArgumentParser) -> AddParser:
    """Every subcommand gets its description, examples and the rich help formatter; the
    ones that talk to an account (`api`) also get `--emulator`."""

    def add_parser(name: str, api: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
        description, examples = HELP.get(name, ("", ""))
        kwargs.setdefault("description", description or kwargs.get("help"))
        if examples:
            kwargs.setdefault("epilog", "examples:\n" + "\n".join(
                f"  {line}" for line in examples.splitlines()))
        parser: argparse.ArgumentParser = add(
            name, parents=[shared] if api else [],
            formatter_class=argparse.RawDescriptionHelpFormatter, rich_help=True, **kwargs)
        return parser
    return add_parser


def expand_emulator_flag(argv: Sequence[str]) -> list[str]:
    """`--emulator` alone means the default state file; `--emulator=DB` names another.

    Done before argparse because an optional value would swallow the next word.
    """
    return [f"--emulator={DEFAULT_EMULATOR_DB}" if a == "--emulator" else a for a in argv]
