"""`iotc apply`: plan (or prove a saved plan), confirm, execute, read back, report.

`destroy` runs the same way (`destroy.py` hands its plan source here)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..ui.console import make_console
from . import args as shared
from .context import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Certificates,
    Interrupted,
    Invocation,
    UsageError,
    key_policy,
    plan_request,
)
from .plan import show
from .root import AddParser

if TYPE_CHECKING:
    from ..client import IoTConnect
    from ..model import DesiredProject
    from ..operations import KeyPolicy, PlanRequest, Replan
    from ..plan import Plan

# what a plan source gives: the plan, how to make it again, the Project of its manifests;
# or the exit code when there is nothing to run (errors, no changes, declined)
Obtained = tuple["Plan", "Replan", "DesiredProject | None"]


@dataclass(frozen=True)
class Changing:
    """What apply and destroy share once a plan is obtained."""

    keys_dir: str
    parallelism: int
    lock_timeout: float
    auto_approve: bool
    destroy: bool
    accept_unverified: bool = False
    report: str | None = None
    outside_window: str | None = None  # --outside-window REASON


def register(add: AddParser) -> None:
    parser = add("apply", help="make the changes (plans first, or applies a saved plan file "
                               "exactly)")
    shared.plan(parser, "manifest files or directories, or one saved plan file")
    parser.add_argument("--manifests", action="append", metavar="PATH",
                        help="with a saved plan: the manifests it was made from (default: the "
                             "paths it records, relative to the working directory)")
    shared.auto_approve(parser)
    shared.certificates(parser)
    parser.add_argument("--keys-recipient", action="append", metavar="AGE1...",
                        help="keep new device keys only sealed to this age recipient (also "
                             "IOTC_KEYS_RECIPIENTS, or Project.spec.keys.recipients); "
                             "repeatable")
    parser.add_argument("--require-sealed", action="store_true",
                        help="refuse to write a plain key or to use a store holding one (also "
                             "IOTC_KEYS_REQUIRE_SEALED=1; implied by recipients, and in CI by "
                             "a Project that declares them)")
    parser.add_argument("--report", metavar="FILE",
                        help="also write the result of every change as JSON (status done, "
                             "unverified, failed, skipped or not started)")
    parser.add_argument("--accept-unverified", action="store_true",
                        help="exit 0 when the only changes not done are unverified ones "
                             "(devices found after a lost answer whose registered certificate "
                             "the service does not show)")
    shared.allow_deletes(parser)
    shared.lock_timeout(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    paths = args.paths
    saved = Path(paths[0]) if len(paths) == 1 and paths[0].endswith(".json") and \
        Path(paths[0]).is_file() else None
    if saved is None and args.manifests:
        raise UsageError("--manifests goes with a saved plan file: iotc apply PLAN.json "
                         "--manifests PATH")
    if saved is not None and (args.target or args.exclude or args.no_prune or
                              args.allow_deletes is not None or args.allow_online):
        raise UsageError("a saved plan carries its own --target/--exclude/--no-prune/"
                         "--allow-deletes/--allow-online; run 'iotc plan' with them instead")
    policy = key_policy(inv, args.keys_dir, args.keys_recipient, args.require_sealed,
                        Certificates(args.cert_days, args.ca_cert, args.ca_key))
    how = Changing(args.keys_dir, args.parallelism, args.lock_timeout, args.auto_approve,
                   destroy=False, accept_unverified=args.accept_unverified, report=args.report,
                   outside_window=args.outside_window)
    if saved is not None:
        return changing(how, inv, policy, lambda api: _saved(api, inv, args, policy, saved))
    request = plan_request(inv, args, destroy=False, prune=not args.no_prune,
                           ca_cert=args.ca_cert, allow_deletes=args.allow_deletes)
    return changing(how, inv, policy, lambda api: from_manifests(api, request, policy, how))


def _saved(api: IoTConnect, inv: Invocation, args: argparse.Namespace, policy: KeyPolicy,
           path: Path) -> Obtained | int:
    from .. import operations

    request = plan_request(inv, args, destroy=False, ca_cert=args.ca_cert)
    proven = operations.prove_saved_plan(api, path, request, policy,
                                         inv.env.secret("IOTC_PLAN_KEY"),
                                         tuple(args.manifests or ()))
    show(proven.plan, "text")
    return proven.plan, proven.replan, proven.project  # reviewed already: no prompt


def from_manifests(api: IoTConnect, request: PlanRequest, policy: KeyPolicy,
                   how: Changing) -> Obtained | int:
    """Plan the manifests against the account, show the plan, confirm."""
    from .. import operations

    with operations.early_snapshot(api, how.parallelism) as pending:
        loaded = operations.load(request)
        plan = operations.plan_account(api, loaded, request, policy, pending)
    show(plan, "text")
    return decided(plan, how.auto_approve, how.destroy, (
        plan, lambda: operations.plan_account(api, loaded, request, policy),
        loaded.desired.project))


def decided(plan: Plan, auto_approve: bool, destroy: bool,
            obtained: Obtained) -> Obtained | int:
    """The plan to run, or the exit code when there is nothing to run: errors 1, no
    changes 0, declined at the prompt 1."""
    if plan.errors or not plan.has_changes:
        return EXIT_ERROR if plan.errors else EXIT_OK
    if not confirm(auto_approve, destroy):
        return EXIT_ERROR
    return obtained


def changing(how: Changing, inv: Invocation, policy: KeyPolicy,
             obtain: Callable[[IoTConnect], Obtained | int]) -> int:
    """Hold the run lock on the key store (and the embedded emulator's state), obtain the
    plan, execute it and report."""
    from ..safefile import LockHeld, run_lock

    locks = [Path(how.keys_dir) / ".lock"]
    if inv.emulator_db is not None:
        locks.append(inv.emulator_db.with_name(inv.emulator_db.name + ".lock"))
    with ExitStack() as held:
        for path in locks:
            try:
                warning = held.enter_context(run_lock(path, how.lock_timeout,
                                                      "destroy" if how.destroy else "apply"))
            except LockHeld as exc:
                raise UsageError(str(exc)) from None
            except OSError as exc:
                raise UsageError(f"cannot take the run lock at {path}: {exc.strerror}") \
                    from None
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
        with inv.connect(parallelism=how.parallelism) as api:
            obtained = obtain(api)
            if isinstance(obtained, int):
                return obtained
            return _execute(how, inv, api, policy, *obtained)


def _execute(how: Changing, inv: Invocation, api: IoTConnect, policy: KeyPolicy,
             plan: Plan, replan: Replan, project: DesiredProject | None) -> int:
    """Execute, then read the account back: `done` only where it shows the change."""
    from .. import operations
    from ..safefile import write_private
    from ..ui import apply_report

    out = make_console()
    store = operations.open_store(api, policy, project, issuing=True)
    moved, left = operations.migrate(store)
    for account, count in moved.items():
        print(f"notice: moved {count} device key folder(s) into {store.base / account}/ "
              "(keys are kept per account now)", file=sys.stderr)
    for line in left:
        print(f"warning: {line}", file=sys.stderr)
    operations.require_sealed(policy, store, plan, project)
    recorded = plan.source.options.get("outside_window") if plan.source else None
    plan, held = operations.hold(plan, project.windows if project else (),
                                 how.outside_window or recorded, time.time())
    hooks = apply_report.ProgressHooks(out)
    try:
        result = operations.execute_and_confirm(api, plan, store, how.parallelism, hooks,
                                                replan, inv.started, held)
    finally:
        hooks.close()
    out.print()
    accept = how.accept_unverified
    apply_report.render(out, result, destroy=plan.destroy, keys_written=store.written,
                        keys_dir=f"{store.root}/", accept_unverified=accept)
    if how.report:
        document = apply_report.as_json(result, accept)
        write_private(Path(how.report), (json.dumps(document, indent=2) + "\n").encode(),
                      mode=0o644)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok_with(accept) else EXIT_ERROR


def confirm(auto_approve: bool, destroy: bool) -> bool:
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        raise UsageError("refusing to change the account without a terminal to confirm on: "
                         "pass --auto-approve")
    what = "destroy these objects" if destroy else "apply these changes"
    try:
        answer = input(f"\nDo you want to {what}? Only 'yes' is accepted: ")
    except (KeyboardInterrupt, EOFError):
        make_console().print("\nInterrupted at the prompt; nothing was changed.")
        raise Interrupted() from None
    if answer.strip() != "yes":
        make_console().print("Cancelled; nothing was changed.")
        return False
    return True
