"""`iotc destroy`: delete what the manifests declare, or with --match what the globs name."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from typing import TYPE_CHECKING

from ..ui.console import make_console
from . import args as shared
from .apply import Changing, Obtained, changing, decided, from_manifests
from .context import EXIT_ERROR, Invocation, UsageError, key_policy, plan_request
from .plan import show
from .root import AddParser

if TYPE_CHECKING:
    from ..client import IoTConnect

SWEPT_KINDS = ("template", "device", "firmware")


def register(add: AddParser) -> None:
    parser = add("destroy", help="delete everything the manifests declare, or what --match "
                                 "names")
    shared.plan(parser, prune=False, paths="*")
    parser.add_argument("--match", action="append", metavar="ADDR-GLOB",
                        help="delete live objects whose address matches, declared or not "
                             "(e.g. 'device/pr42-*'); PATHs then only lend their "
                             "Project.protect; repeatable")
    parser.add_argument("--allow-empty", action="store_true",
                        help="with --match: exit 0 when nothing matches (else exit 1)")
    parser.add_argument("--all", dest="everything", action="store_true",
                        help="with --match: allow a sweep that deletes every object of a kind "
                             "in the account (refused otherwise)")
    parser.add_argument("--older-than", metavar="DURATION",
                        help="with --match: only objects created longer ago, e.g. 24h, 7d "
                             "(templates and firmware: the service reports no device ages)")
    shared.auto_approve(parser)
    shared.lock_timeout(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    how = Changing(args.keys_dir, args.parallelism, args.lock_timeout, args.auto_approve,
                   destroy=True, outside_window=args.outside_window)
    policy = key_policy(inv, args.keys_dir)
    if args.match:
        for glob in args.match:
            kinded_glob(glob, "--match", SWEPT_KINDS)
        older = _older_than(args)
        return changing(how, inv, policy, lambda api: _sweep(api, inv, args, older))
    if args.older_than:
        raise UsageError("--older-than goes with --match: iotc destroy --match 'template/pr*' "
                         "--older-than 24h")
    if not args.paths:
        raise UsageError("destroy needs manifests (PATH...) or --match ADDR-GLOB")
    request = plan_request(inv, args, destroy=True)
    return changing(how, inv, policy, lambda api: from_manifests(api, request, policy, how))


def _older_than(args: argparse.Namespace) -> datetime.timedelta | None:
    if not args.older_than:
        return None
    if any(not g.startswith(("template/", "firmware/")) for g in args.match):
        raise UsageError("--older-than: IoTConnect reports no creation time for devices, "
                         "so only template/ and firmware/ globs can be aged; sweep "
                         "devices by name (e.g. --match 'device/pr42-*')")
    return duration(args.older_than)


def _sweep(api: IoTConnect, inv: Invocation, args: argparse.Namespace,
           older: datetime.timedelta | None) -> Obtained | int:
    """`destroy --match`: live objects by address glob, declared or not; the Project of any
    manifests given still protects."""
    from .. import operations
    from ..model import Globs, Guards

    protect, guards = Globs(), Guards()
    if args.paths:
        try:
            loaded = operations.load(plan_request(inv, args, destroy=True))
        except operations.ManifestsInvalid as exc:
            raise operations.ManifestsInvalid(exc.loaded, "the manifests given for their "
                                              "Project.protect do not load") from None
        if loaded.desired.project is not None:
            protect, guards = loaded.desired.project.protect, loaded.desired.project.guards
    plan, replan = operations.sweep(api, tuple(args.match), protect, older, args.parallelism,
                                    args.everything, guards, tuple(args.allow_online or ()))
    show(plan, "text")
    if not plan.errors and not plan.has_changes and not plan.warnings and \
            not args.allow_empty:  # (a protected match is a warning, not empty)
        make_console(sys.stderr).print(
            f"error: nothing matches {' '.join(repr(g) for g in args.match)}; "
            "pass --allow-empty when a sweep may find nothing", highlight=False)
        return EXIT_ERROR
    return decided(plan, args.auto_approve, True, (plan, replan, None))


def duration(text: str) -> datetime.timedelta:
    """`90m`, `24h`, `7d`, `2w` as a timedelta; UsageError otherwise."""
    found = re.fullmatch(r"(\d{1,6})([smhdw])", text.strip())
    if found is None:
        raise UsageError(f"--older-than {text!r}: expected a number and a unit, e.g. 90m, "
                         "24h, 7d, 2w")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    return datetime.timedelta(**{unit[found.group(2)]: int(found.group(1))})


def kinded_glob(text: str, option: str, kinds: tuple[str, ...]) -> str:
    """An address glob must name its kind: `pr44*` alone would match no address (they all
    start with one), and a nightly sweep written that way silently did nothing."""
    kind, _, name = text.partition("/")
    if kind.casefold() in kinds and name:
        return text
    hint = f"; did you mean '{kinds[1] if 'device' in kinds else kinds[0]}/{text}'?" \
        if "/" not in text else ""
    raise UsageError(f"{option} {text!r}: an address glob names its kind: "
                     f"{', '.join(k + '/GLOB' for k in kinds)}{hint}")
