"""`iotc plan`: what apply would change, as text, markdown or JSON, and optionally saved."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..ui.console import make_console
from . import args as shared
from .context import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    Invocation,
    UsageError,
    key_policy,
    plan_request,
)
from .root import AddParser

if TYPE_CHECKING:
    from ..plan import Plan


def register(add: AddParser) -> None:
    parser = add("plan", help="show what would change in the account")
    shared.plan(parser)
    parser.add_argument("--out", metavar="FILE", help="save the plan for 'iotc apply FILE'")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                        help="text for a terminal (default), markdown for a pull-request "
                             "comment, json (schemas/plan.schema.json) for tools")
    parser.add_argument("--detailed-exitcode", action="store_true",
                        help="exit 2 when there are changes, 0 when there are none")
    parser.add_argument("--destroy", action="store_true",
                        help="plan the teardown of everything declared")
    parser.add_argument("--expiry-warning", type=int, default=30, metavar="DAYS",
                        help="warn about kept certificates that expire within DAYS "
                             "(default 30)")
    parser.add_argument("--ca-cert", metavar="FILE",
                        help="the CA apply will sign with (ca-individual devices then need "
                             "no certificate file; also IOTC_CA_CERT)")
    shared.allow_deletes(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from .. import operations
    from ..plan import planfile

    if args.out and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a folder; name the plan file, e.g. "
                         f"--out {Path(args.out) / 'plan.json'}")
    request = plan_request(inv, args, destroy=args.destroy, prune=not args.no_prune,
                           expiry_warning=args.expiry_warning, ca_cert=args.ca_cert,
                           allow_deletes=args.allow_deletes)
    policy = key_policy(inv, args.keys_dir)
    with inv.connect(parallelism=args.parallelism) as api, \
            operations.early_snapshot(api, args.parallelism) as pending:
        loaded = operations.load(request)
        plan = operations.plan_account(api, loaded, request, policy, pending)
    show(plan, args.format)
    if plan.errors:
        return EXIT_ERROR
    if args.out:
        try:
            planfile.write(plan, Path(args.out), inv.env.secret("IOTC_PLAN_KEY"))
        except OSError as exc:
            raise UsageError(f"cannot write the plan to {args.out}: {exc.strerror}") from None
        # a note for the person, on stderr: stdout is the plan itself (a PR comment, JSON)
        where = make_console() if args.format == "text" else make_console(sys.stderr)
        where.print(f"\nSaved the plan to {args.out}. To apply it: iotc apply {args.out}",
                    highlight=False)
    drift = plan.has_changes or bool(plan.unmanaged)
    return EXIT_CHANGES if args.detailed_exitcode and drift else EXIT_OK


def show(plan: Plan, fmt: str) -> None:
    """The plan in the view asked for; secrets masked in every one."""
    from ..plan import planfile
    from ..ui import plan_markdown, plan_text

    plan = planfile.masked(plan)
    if fmt == "json":
        sys.stdout.write(planfile.dumps(plan))
    elif fmt == "markdown":
        sys.stdout.write(plan_markdown.render(plan))
    else:
        plan_text.render(make_console(), plan)
