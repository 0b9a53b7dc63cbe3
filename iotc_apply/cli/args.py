"""Argument groups more than one command takes (kubectl's shared flag sets)."""

from __future__ import annotations

import argparse

from ..defaults import DEFAULT_KEYS_DIR


def keys_dir(parser: argparse.ArgumentParser, purpose: str = "device keys and certificates"
             ) -> None:
    parser.add_argument("--keys-dir", default=str(DEFAULT_KEYS_DIR), metavar="DIR",
                        help=f"{purpose} (default {DEFAULT_KEYS_DIR})")


def parallelism(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parallelism", type=int, default=10, metavar="N",
                        help="concurrent requests (default 10)")


def variables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--var", action="append", metavar="NAME=VALUE",
                        help="a variable's value (beats --var-file and IOTC_VAR_NAME); "
                             "repeatable")
    parser.add_argument("--var-file", action="append", metavar="FILE",
                        help="variable values from a YAML mapping (later files win); "
                             "repeatable")


def plan(parser: argparse.ArgumentParser, paths_help: str = "manifest files or directories",
         prune: bool = True, paths: str = "+") -> None:
    """Arguments shared by plan, apply and destroy (destroy ignores prune globs)."""
    parser.add_argument("paths", nargs=paths, metavar="PATH", help=paths_help)
    variables(parser)
    parser.add_argument("--target", action="append", metavar="ADDR",
                        help="only this address (and what it needs), e.g. device/lt-0001")
    parser.add_argument("--exclude", action="append", metavar="ADDR",
                        help="leave this address (and what needs it) out")
    if prune:
        parser.add_argument("--no-prune", action="store_true",
                            help="do not delete undeclared objects matching Project.prune")
    parser.add_argument("--allow-online", action="append", metavar="DUID-GLOB",
                        help="let the plan delete or replace these devices although they are "
                             "connected or were seen within the online window; repeatable")
    parser.add_argument("--outside-window", metavar="REASON", type=_reason,
                        help="run deletes, replacements and deactivations although no change "
                             "window (Project.spec.windows) is open; the reason is recorded "
                             "in the saved plan and the apply report")
    parallelism(parser)
    keys_dir(parser)


def allow_deletes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-deletes", type=_count, metavar="N",
                        help="lift Project.spec.guards.maxDeletes (and the emptied-template "
                             "guard) to N device deletes or replacements for this run; a "
                             "saved plan records it")


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise argparse.ArgumentTypeError("give a reason, e.g. --outside-window 'INC-4711 "
                                         "hotfix'")
    if len(reason) > 500:
        raise argparse.ArgumentTypeError("a reason of at most 500 characters")
    return reason


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return int(text)


def certificates(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-cert", metavar="FILE",
                        help="sign device certificates of ca-signed and ca-individual "
                             "templates with this CA (also IOTC_CA_CERT)")
    parser.add_argument("--ca-key", metavar="FILE",
                        help="the CA's private key (also IOTC_CA_KEY; an encrypted one's "
                             "passphrase from IOTC_CA_KEY_PASSPHRASE); never copied")
    parser.add_argument("--cert-days", type=int, default=3650, metavar="N",
                        help="validity of generated certificates (default 3650)")


def auto_approve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auto-approve", action="store_true",
                        help="do not ask for confirmation (needed without a terminal)")


def lock_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another apply on the same key store to "
                             "finish (default 0: refuse at once)")
