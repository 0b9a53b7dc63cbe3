"""Command line: argparse -> options -> one function per command -> exit code.

The only module that wires the layers together (settings, client, emulator, manifests, ui).
Exit codes: 0 success, 1 error (bad input, API failure), 2 changes present
(`--detailed-exitcode`), 130 interrupted. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import getpass
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client.errors import ApiError
from .client.redact import redact_text, remember
from .defaults import DEFAULT_EMULATOR_DB, DEFAULT_KEYS_DIR
from .ui.console import error, make_console

if TYPE_CHECKING:
    from .client import IoTConnect

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit 1."""


@dataclass(frozen=True)
class Options:
    """Everything a command needs from the command line, resolved."""

    command: str
    args: argparse.Namespace
    emulator_db: Path | None


# -- connection ----------------------------------------------------------------------------------


@contextmanager
def connect(opts: Options) -> Iterator[IoTConnect]:
    """An API client: to the real service (flags, env, stored login) or to an in-process
    emulator whose state lives in a SQLite file (`--emulator`)."""
    from .client import IoTConnect
    from .client.session import ApiSession
    from .client.settings import Settings, TokenStore

    if opts.emulator_db is None:
        settings = Settings.from_env(os.environ, skey=getattr(opts.args, "skey", None),
                                     env=getattr(opts.args, "env", None),
                                     pf=getattr(opts.args, "pf", None),
                                     username=getattr(opts.args, "user", None))
        yield IoTConnect(ApiSession(settings, TokenStore.for_settings(settings)))
        return
    server = _embedded_emulator(opts.emulator_db)
    with server:
        acc = server.emulator.state.account
        settings = Settings(discovery_url=server.discovery_url, skey=acc.solution_key,
                            env=acc.env, pf=acc.pf, username=acc.user_email,
                            password=acc.user_password,
                            trace=bool(os.environ.get("IOTC_API_TRACE")))
        yield IoTConnect(ApiSession(settings, TokenStore(None)))


# -- commands ------------------------------------------------------------------------------------


def _embedded_emulator(db: Path) -> Any:
    """The in-process emulator over a SQLite file; a path that cannot hold one is a
    one-line error."""
    import sqlite3

    from .emulator import EmulatorServer

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        return EmulatorServer(db=str(db))
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"--emulator={db}: cannot keep the emulator's state there "
                         f"({reason})") from None


def cmd_validate(opts: Options) -> int:
    """Schema and reference checks of manifests; no network."""
    from .manifest import load
    from .ui import diagnostics as show

    loaded = load(opts.args.paths, _given(opts))
    resources = len(loaded.desired.resources)
    if opts.args.format == "github":
        sys.stdout.write(show.github(loaded.diagnostics))
    elif opts.args.format == "json":
        sys.stdout.write(show.as_json(loaded.diagnostics, loaded.files, loaded.documents,
                                      resources))
    else:
        err, out = make_console(sys.stderr), make_console()
        show.render(err, loaded.diagnostics)
        line = show.summary(loaded.diagnostics, loaded.files, loaded.documents, resources)
        (out if loaded.ok else err).print(line)
    return EXIT_OK if loaded.ok else EXIT_ERROR


def _given(opts: Options, recorded: dict[str, Any] | None = None) -> Any:
    """Variable values from --var, --var-file and IOTC_VAR_* (a saved plan's recorded values
    count as --var; its sensitive ones, recorded masked, must come from elsewhere)."""
    from .manifest.variables import MASK, Given, parse_flags

    try:
        flags = parse_flags(getattr(opts.args, "var", None) or [])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if recorded is not None:
        flags = {**{k: str(v) for k, v in recorded.items() if v != MASK}, **flags}
    environ = {k: v for k, v in os.environ.items() if k.startswith("IOTC_VAR_")}
    return Given(flags, tuple(getattr(opts.args, "var_file", None) or ()), environ)


def _load(opts: Options, recorded: dict[str, Any] | None = None) -> Any:
    """Load and validate the manifests; on errors print them and return None."""
    from .manifest import load
    from .ui import diagnostics as show

    loaded = load(opts.args.paths, _given(opts, recorded))
    if not loaded.ok:
        err = make_console(sys.stderr)
        show.render(err, loaded.diagnostics)
        err.print(show.summary(loaded.diagnostics, loaded.files, loaded.documents, 0))
        return None
    remember(*loaded.variables.secrets())
    return loaded


def key_store(api: IoTConnect, opts: Options, project: Any = None,
              issuing: bool = False) -> Any:
    """The logged-in account's part of the key store (`KEYS_DIR/<cpId>-<env>/`), sealed to
    the age recipients of --keys-recipient / IOTC_KEYS_RECIPIENTS, else of the Project."""
    from .apply.keys import KeyStore, KeyStoreError, account_folder, recipients

    me = api.session.identity()
    given = list(getattr(opts.args, "keys_recipient", None) or [])
    given += os.environ.get("IOTC_KEYS_RECIPIENTS", "").replace(",", " ").split()
    if not given and project is not None:
        given = list(project.recipients)
    attest = secret_env("IOTC_KEYS_ATTEST_KEY") or secret_env("IOTC_PLAN_KEY")
    try:
        store = KeyStore(Path(opts.args.keys_dir), account_folder(me.cpid, me.env),
                         recipients(given), _issuer(opts) if issuing else None,
                         attest.encode() if attest else None)
        store.check_private()
        return store
    except KeyStoreError as exc:
        raise UsageError(str(exc)) from None


def secret_env(name: str) -> str | None:
    """A secret from the environment; unset is None, but set and empty is an error: an
    empty IOTC_PLAN_KEY once turned plan signatures off without a word."""
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.strip():
        raise UsageError(f"{name} is set but empty; unset it or give it the secret")
    remember(value)
    return value


def _require_sealed(opts: Options, keys: Any, plan: Any, project: Any) -> None:
    """Sealed means sealed: when recipients are configured (flag, environment, Project),
    --require-sealed or IOTC_KEYS_REQUIRE_SEALED is set, or in CI (CI=true) a Project
    declares recipients, apply refuses before the first create to write a plain key or to
    use a store that holds one. A store that holds sealed keys gets no plain key beside
    them whatever the settings (a missing recipient secret in CI once wrote plain keys that
    the workflow then refused to commit, lost with the runner)."""
    from .model import Kind
    from .plan import Action

    if plan.destroy:
        return  # a teardown writes no key: custody never stands in its way
    makes_keys = any(c.address.kind is Kind.DEVICE and c.action in (Action.CREATE,
                                                                     Action.REPLACE)
                     for c in plan.changes)
    declared = bool(project is not None and project.recipients)
    required = bool(keys.sealed_to) or bool(getattr(opts.args, "require_sealed", False)) or \
        os.environ.get("IOTC_KEYS_REQUIRE_SEALED", "").strip().lower() in ("1", "true", "yes") \
        or (declared and os.environ.get("CI", "").lower() == "true")
    plain, sealed = keys.forms()
    if required and plain:
        raise UsageError(f"{keys.root} holds {plain} plain key(s) and sealed keys are "
                         "required; seal them first: iotc keys seal --recipient AGE1...")
    if makes_keys and not keys.sealed_to and (required or sealed):
        why = f"the store holds {sealed} sealed key(s)" if sealed else "sealed keys are required"
        raise UsageError(f"{why}, but no age recipient is given, so apply would write plain "
                         "keys: set IOTC_KEYS_RECIPIENTS (or --keys-recipient, or "
                         "Project.spec.keys.recipients)")


def _issuer(opts: Options) -> Any:
    """Self-signed, or signed by the CA of --ca-cert/--ca-key (IOTC_CA_CERT, IOTC_CA_KEY,
    passphrase from IOTC_CA_KEY_PASSPHRASE); the CA key is read, never copied."""
    from .apply.keys import load_issuer

    a = opts.args
    cert = getattr(a, "ca_cert", None) or os.environ.get("IOTC_CA_CERT")
    key = getattr(a, "ca_key", None) or os.environ.get("IOTC_CA_KEY")
    passphrase = os.environ.get("IOTC_CA_KEY_PASSPHRASE")
    remember(passphrase)
    return load_issuer(getattr(a, "cert_days", None) or 3650, Path(cert) if cert else None,
                       Path(key) if key else None, passphrase)


def _plan_options(opts: Options, destroy: bool, keys: Any) -> Any:
    from .model import Address
    from .plan import PlanOptions

    a = opts.args
    try:
        targets = tuple(Address.parse(t) for t in a.target or ())
        excludes = tuple(Address.parse(t) for t in a.exclude or ())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ca = bool(getattr(a, "ca_cert", None) or os.environ.get("IOTC_CA_CERT"))
    kept = keys.duids()
    return PlanOptions(destroy=destroy, prune=not getattr(a, "no_prune", False), targets=targets,
                       excludes=excludes, local_keys=kept, ca=ca,
                       expiring=keys.expiring(getattr(a, "expiry_warning", None) or 30, kept))


def make_plan(api: IoTConnect, loaded: Any, opts: Options, destroy: bool,
              pending: Any = None) -> Any:
    """Snapshot the account (list endpoints, in parallel) and plan against it; the plan
    records what it was made from (manifest paths and digest, options). `pending`, a
    snapshot started before the manifests loaded, is finished rather than a new one taken;
    the key store is scanned while its listings run."""
    import dataclasses

    from . import snapshot
    from .model import DesiredFirmware, DesiredTemplate
    from .plan import make_plan as plan_of
    from .plan import planfile
    from .plan.model import Source

    desired = loaded.desired
    with ExitStack() as stack:
        if pending is None:
            pending = stack.enter_context(snapshot.start(api, opts.args.parallelism))
        keys = key_store(api, opts)
        options = _plan_options(opts, destroy, keys)
        snap = pending.finish([t.code for t in desired.of(DesiredTemplate)],
                              [f.name for f in desired.of(DesiredFirmware)])
    if not destroy and options.local_keys:  # kept keys of devices not registered yet
        waiting = options.local_keys - snap.devices.keys()
        options = dataclasses.replace(options, unattested=keys.unattested(waiting))
    if not destroy and _unconfirmed_types(desired):  # one request, only when it matters
        options = dataclasses.replace(options,
                                      data_types=frozenset(api.templates.data_types()))
    plan = plan_of(desired, snap, options)
    recorded = {"destroy": options.destroy, "prune": options.prune,
                "targets": [str(t) for t in options.targets],
                "excludes": [str(e) for e in options.excludes]}
    variables = loaded.variables.recorded()
    digest = planfile.source_digest(loaded.digest, recorded, variables)
    return dataclasses.replace(plan, source=Source(tuple(opts.args.paths), digest, recorded,
                                                   variables),
                               secrets=frozenset(loaded.variables.secrets()))


def _unconfirmed_types(desired: Any) -> bool:
    from .manifest.kinds import UNCONFIRMED_TYPES
    from .model import DesiredTemplate

    return any(a.data_type in UNCONFIRMED_TYPES for t in desired.of(DesiredTemplate)
               for a in t.attributes)


def _early_snapshot(api: IoTConnect, opts: Options) -> Any:
    """The account's listings, started before the manifests load (they do not depend on
    them). A failure (no login, no network) surfaces when the plan needs the snapshot, so
    manifest errors are still reported first; manifests that do not load stop it."""
    from . import snapshot

    return snapshot.start(api, opts.args.parallelism)


def show_plan(plan: Any, fmt: str) -> None:
    from .plan import planfile
    from .ui import plan_markdown, plan_text

    plan = planfile.masked(plan)
    if fmt == "json":
        sys.stdout.write(planfile.dumps(plan))
    elif fmt == "markdown":
        sys.stdout.write(plan_markdown.render(plan))
    else:
        plan_text.render(make_console(), plan)


def cmd_plan(opts: Options) -> int:
    from .plan import planfile

    if opts.args.out and Path(opts.args.out).is_dir():
        raise UsageError(f"--out {opts.args.out} is a folder; name the plan file, e.g. "
                         f"--out {Path(opts.args.out) / 'plan.json'}")
    with connect(opts) as api, _early_snapshot(api, opts) as pending:
        loaded = _load(opts)
        if loaded is None:
            return EXIT_ERROR
        plan = make_plan(api, loaded, opts, destroy=opts.args.destroy, pending=pending)
    show_plan(plan, opts.args.format)
    if plan.errors:
        return EXIT_ERROR
    if opts.args.out:
        try:
            planfile.write(plan, Path(opts.args.out), secret_env("IOTC_PLAN_KEY"))
        except OSError as exc:
            raise UsageError(f"cannot write the plan to {opts.args.out}: {exc.strerror}") \
                from None
        make_console().print(f"\nSaved the plan to {opts.args.out}. To apply it: iotc apply "
                             f"{opts.args.out}", highlight=False)
    drift = plan.has_changes or bool(plan.unmanaged)
    return EXIT_CHANGES if opts.args.detailed_exitcode and drift else EXIT_OK


def cmd_apply(opts: Options) -> int:
    return _apply(opts, destroy=False)


def cmd_destroy(opts: Options) -> int:
    a = opts.args
    if a.match:
        return _apply(opts, destroy=True)
    if a.older_than:
        raise UsageError("--older-than goes with --match: iotc destroy --match 'template/pr*' "
                         "--older-than 24h")
    if not a.paths:
        raise UsageError("destroy needs manifests (PATH...) or --match ADDR-GLOB")
    return _apply(opts, destroy=True)


def _sweep_plan(api: IoTConnect, opts: Options) -> tuple[Any, Callable[[], Any]]:
    """`destroy --match`: live objects by address glob, declared or not; the Project of any
    manifests given still protects."""
    import datetime

    from . import snapshot
    from .model import Globs
    from .plan import make_sweep

    a = opts.args
    for glob in a.match:
        _kinded_glob(glob, "--match", ("template", "device", "firmware"))
    cutoff = None
    if a.older_than:
        if any(not g.startswith(("template/", "firmware/")) for g in a.match):
            raise UsageError("--older-than: IoTConnect reports no creation time for devices, "
                             "so only template/ and firmware/ globs can be aged; sweep "
                             "devices by name (e.g. --match 'device/pr42-*')")
        cutoff = datetime.datetime.now(datetime.UTC) - _duration(a.older_than)
    protect = Globs()
    if a.paths:
        loaded = _load(opts)
        if loaded is None:
            raise UsageError("the manifests given for their Project.protect do not load")
        if loaded.desired.project is not None:
            protect = loaded.desired.project.protect

    def plan() -> Any:
        snap = snapshot.take(api, None, None, parallelism=a.parallelism)
        return make_sweep(snap, tuple(a.match), protect, cutoff)
    return plan(), plan


def _duration(text: str) -> Any:
    """`90m`, `24h`, `7d`, `2w` as a timedelta; UsageError otherwise."""
    import datetime
    import re

    found = re.fullmatch(r"(\d{1,6})([smhdw])", text.strip())
    if found is None:
        raise UsageError(f"--older-than {text!r}: expected a number and a unit, e.g. 90m, "
                         "24h, 7d, 2w")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    return datetime.timedelta(**{unit[found.group(2)]: int(found.group(1))})


def _apply(opts: Options, destroy: bool) -> int:
    """Hold the run lock on the key store (and the embedded emulator's state), then apply."""
    from .safefile import LockHeld, run_lock

    locks = [Path(opts.args.keys_dir) / ".lock"]
    if opts.emulator_db is not None:
        locks.append(opts.emulator_db.with_name(opts.emulator_db.name + ".lock"))
    with ExitStack() as held:
        for path in locks:
            try:
                warning = held.enter_context(run_lock(path, opts.args.lock_timeout,
                                                      "destroy" if destroy else "apply"))
            except LockHeld as exc:
                raise UsageError(str(exc)) from None
            except OSError as exc:
                raise UsageError(f"cannot take the run lock at {path}: {exc.strerror}") \
                    from None
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
        return _apply_locked(opts, destroy)


def _apply_locked(opts: Options, destroy: bool) -> int:
    """Plan (or read a saved plan and prove it is still the plan), confirm, execute, report."""
    paths = opts.args.paths
    saved = Path(paths[0]) if not destroy and len(paths) == 1 and paths[0].endswith(
        ".json") and Path(paths[0]).is_file() else None
    if saved is None and getattr(opts.args, "manifests", None):
        raise UsageError("--manifests goes with a saved plan file: iotc apply PLAN.json "
                         "--manifests PATH")
    with connect(opts) as api:
        project = None
        if saved is not None:
            plan, replan, project = _saved_plan(api, saved, opts)
            show_plan(plan, "text")
        elif destroy and opts.args.match:
            plan, replan = _sweep_plan(api, opts)
            show_plan(plan, "text")
            if not plan.errors and not plan.has_changes and not plan.warnings and \
                    not opts.args.allow_empty:  # (a protected match is a warning, not empty)
                make_console(sys.stderr).print(
                    f"error: nothing matches {' '.join(repr(g) for g in opts.args.match)}; "
                    "pass --allow-empty when a sweep may find nothing", highlight=False)
                return EXIT_ERROR
            if plan.errors or not plan.has_changes:
                return EXIT_ERROR if plan.errors else EXIT_OK
            if not _confirm(opts, destroy):
                return EXIT_ERROR
        else:
            with _early_snapshot(api, opts) as pending:
                loaded = _load(opts)
                if loaded is None:
                    return EXIT_ERROR
                plan = make_plan(api, loaded, opts, destroy=destroy, pending=pending)
            show_plan(plan, "text")
            if plan.errors or not plan.has_changes:
                return EXIT_ERROR if plan.errors else EXIT_OK
            if not _confirm(opts, destroy):
                return EXIT_ERROR
            replan = lambda: make_plan(api, loaded, opts, destroy=destroy)  # noqa: E731
            project = loaded.desired.project
        return _execute(api, plan, opts, replan, project)


def _saved_plan(api: IoTConnect, path: Path, opts: Options) -> \
        tuple[Any, Callable[[], Any], Any]:
    """A saved plan, only if it is exactly what the same manifests and options give now.

    The file is untrusted (an artifact between CI jobs): it must parse, match the schema and
    carry a valid signature when IOTC_PLAN_KEY is set; the manifests it names (or
    `--manifests`) must have the digest it recorded; and a plan made now from them, with
    its recorded options, must equal it part for part. What runs is the plan made now.
    """
    from .plan import planfile

    a = opts.args
    if a.target or a.exclude or getattr(a, "no_prune", False):
        raise UsageError("a saved plan carries its own --target/--exclude/--no-prune; run "
                         "'iotc plan' with them instead")
    try:
        saved, document = planfile.read(path, secret_env("IOTC_PLAN_KEY"))
    except planfile.PlanFileError as exc:
        raise UsageError(str(exc)) from None
    if saved.errors:  # e.g. saved with `plan --format json >`, which keeps errors
        raise UsageError(f"{path}: the plan has {len(saved.errors)} error(s) and cannot "
                         f"be applied: {saved.errors[0]}")
    if saved.source is None:
        raise UsageError(f"{path}: the plan records no manifests; make it with 'iotc plan "
                         "--out'")
    _check_account(api, saved)
    manifests = list(a.manifests or saved.source.paths)
    loaded = _load(replace_args(opts, paths=manifests), saved.source.variables)
    if loaded is None:
        raise UsageError(f"{path}: the manifests it was made from ({' '.join(manifests)}) "
                         "do not load")
    if planfile.source_digest(loaded.digest, saved.source.options,
                              loaded.variables.recorded()) != saved.source.digest:
        raise UsageError(f"{path}: the manifests in {' '.join(manifests)} (or the plan's "
                         "options) differ from the ones the plan was made from; run 'iotc "
                         "plan' again (or pass --manifests PATH)")
    recorded = saved.source.options
    again = replace_args(opts, paths=list(saved.source.paths), target=recorded["targets"],
                         exclude=recorded["excludes"], no_prune=not recorded["prune"])
    fresh = make_plan(api, loaded, again, destroy=recorded["destroy"])
    _check_fresh(saved, fresh)
    differs = planfile.difference(document, fresh)
    if differs:
        raise UsageError(f"{path}: not the plan the manifests and the account give now: "
                         f"{differs}; run 'iotc plan' again")
    return fresh, lambda: make_plan(api, loaded, again, destroy=recorded["destroy"]), \
        loaded.desired.project


def replace_args(opts: Options, **changes: Any) -> Options:
    """The same options with some arguments changed."""
    values = {**vars(opts.args), **changes}
    return Options(opts.command, argparse.Namespace(**values), opts.emulator_db)


def _check_account(api: IoTConnect, plan: Any) -> None:
    """Refuse a plan made for another account."""
    me = api.session.identity()
    acc = plan.account
    if (me.cpid, me.pf, me.env) != (acc.cpid, acc.pf, acc.env):
        raise UsageError(f"the plan was made for {acc.pf}/{acc.env} cpId {acc.cpid}, not for "
                         f"this account ({me.pf}/{me.env} cpId {me.cpid})")


def _check_fresh(saved: Any, fresh: Any) -> None:
    """Refuse a plan the account has moved away from since it was made."""
    from .plan import planfile

    changed = planfile.stale(saved, fresh.fingerprint)
    if changed:
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise UsageError(f"plan is stale: {len(changed)} object(s) changed since it was made "
                         f"({shown}); run 'iotc plan' again")


def _confirm(opts: Options, destroy: bool) -> bool:
    if opts.args.auto_approve:
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


def _execute(api: IoTConnect, plan: Any, opts: Options, replan: Callable[[], Any],
             project: Any = None) -> int:
    """Execute, then read the account back: `done` only where it shows the change."""
    from .apply.actions import Actions
    from .apply.executor import execute
    from .ui import apply_report

    out = make_console()
    keys = key_store(api, opts, project, issuing=True)
    _migrate(keys)
    _require_sealed(opts, keys, plan, project)
    hooks = apply_report.ProgressHooks(out)
    try:
        result = execute(plan, Actions(api, keys, plan), opts.args.parallelism, hooks)
    finally:
        hooks.close()
    # the whole command's time, as the user waited it (the walk alone read "0.0 s")
    result = dataclasses.replace(result, seconds=time.monotonic() - STARTED[0])
    if not result.interrupted:
        try:
            result = result.confirmed({c.address: c.action for c in replan().changes})
        except ApiError as exc:  # the changes stand; only their confirmation is missing
            result = result.not_confirmed(redact_text(str(exc)))
    out.print()
    accept = bool(getattr(opts.args, "accept_unverified", False))
    apply_report.render(out, result, destroy=plan.destroy, keys_written=keys.written,
                        keys_dir=f"{keys.root}/", accept_unverified=accept)
    if getattr(opts.args, "report", None):
        from .safefile import write_private

        document = apply_report.as_json(result, accept)
        write_private(Path(opts.args.report), (json.dumps(document, indent=2) + "\n").encode(),
                      mode=0o644)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok_with(accept) else EXIT_ERROR


class Interrupted(Exception):
    """Ctrl-C where nothing had started: said where it was raised; exit 130."""


def _migrate(keys: Any) -> None:
    """Move a key store of the flat layout into per-account folders (under the run lock)."""
    from .apply.keys import KeyStoreError

    try:
        moved, left = keys.migrate()
    except (OSError, KeyStoreError) as exc:
        raise UsageError(f"cannot move the key store into per-account folders: {exc}") \
            from None
    for account, count in moved.items():
        print(f"notice: moved {count} device key folder(s) into {keys.base / account}/ "
              "(keys are kept per account now)", file=sys.stderr)
    for line in left:
        print(f"warning: {line}", file=sys.stderr)


def cmd_login(opts: Options) -> int:
    out = make_console()
    with connect(opts) as api:
        password = _stdin_password() if opts.args.password_stdin else \
            os.environ.get("IOTC_PASS") or _prompt_password(opts)
        identity = api.session.login(password=password)
    out.print(f"Logged in as {identity.username} (pf={identity.pf}, env={identity.env}, "
              f"cpId={identity.cpid}).")
    return EXIT_OK


def _stdin_password() -> str:
    """The first line of standard input, without its newline (`echo pw | iotc login`)."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError("--password-stdin: standard input holds no password")
    return line


def cmd_completion(opts: Options) -> int:
    """A completion script for the shell, from the parser itself (shtab)."""
    import shtab

    sys.stdout.write(shtab.complete(build_parser(), shell=opts.args.shell))
    return EXIT_OK


def _prompt_password(opts: Options) -> str | None:
    if opts.emulator_db is not None:
        return None  # the emulator's seed login is used
    if not sys.stdin.isatty():
        raise UsageError("no password: set IOTC_PASS or run 'iotc login' on a terminal")
    return getpass.getpass("IoTConnect password: ")


def cmd_logout(opts: Options) -> int:
    from .client.settings import Settings, TokenStore

    settings = Settings.from_env(os.environ)
    removed = TokenStore.for_settings(settings).clear()
    make_console().print("Logged out." if removed else "Not logged in.")
    return EXIT_OK


def cmd_whoami(opts: Options) -> int:
    with connect(opts) as api:
        me = api.session.identity()
    out = make_console()
    for label, value in (("account", me.username), ("platform", me.pf),
                         ("environment", me.env), ("cpId", me.cpid),
                         ("instance", "dedicated" if me.dedicated else "shared")):
        out.print(f"{label + ':':<13}{value}")
    return EXIT_OK


def cmd_export(opts: Options) -> int:
    """Manifests (and upgrade files) for the live account; never keys."""
    import datetime
    from concurrent.futures import ThreadPoolExecutor

    from . import export, snapshot
    from .safefile import OutsideRoot, inside, write_private

    a = opts.args
    out = Path(a.out)
    globs = tuple(_address_glob(g) for g in a.match or ())
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not a.force:
        raise UsageError(f"{out} is not empty; pass --force to write into it")
    with connect(opts) as api:
        me = api.session.identity()
        snap = snapshot.take(api, None, None, parallelism=a.parallelism)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = (f"Exported by iotc export from {me.pf}/{me.env} cpId {me.cpid} "
                  f"({me.username}) at {stamp}.")
        try:
            kept = key_store(api, opts).duids()
        except OSError as exc:
            raise UsageError(f"cannot read the key store {opts.args.keys_dir}: "
                             f"{exc.strerror}") from None
        result = export.export(snap, kept, globs, header)
        made = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            # every download first (streamed into temp files in OUT), then the writes: a
            # failed or refused download leaves nothing behind
            with ThreadPoolExecutor(max_workers=max(1, a.parallelism)) as pool:
                downloads = list(pool.map(lambda item: _fetch(api, out, item), result.fetch))
            for name, text in sorted(result.files.items()):
                write_private(inside(out, name), text.encode(), mode=0o644)
            for name, temp in downloads:
                os.chmod(temp, 0o644)
                os.replace(temp, inside(out, name))
        except OutsideRoot as exc:
            raise UsageError(f"export: {exc}; nothing more written") from None
        finally:
            for leftover in out.glob(".download.*"):
                leftover.unlink(missing_ok=True)
            if made and not any(out.iterdir()):
                out.rmdir()
    console = make_console()
    for line in result.skipped:
        console.print(f"warning: {line}", markup=False, highlight=False)
    for item in result.fetch:
        if not item.file.tag:
            console.print(f"warning: {item.path}: the service gave no MD5 for this file; its "
                          "content is unverified (marked so in firmware.yaml)", markup=False,
                          highlight=False)
    c = result.counts
    console.print(
        f"Exported {c['templates']} template(s), {c['devices']} device(s) as "
        f"{c['device_sets']} DeviceSet(s) and {c['device_documents']} Device document(s), "
        f"{c['firmware']} firmware and {c['files']} file(s) to {out}/.", highlight=False)
    return EXIT_OK


def _fetch(api: IoTConnect, out: Path, item: Any) -> tuple[str, Path]:
    """One upgrade file streamed into a temp file in `out`, its MD5 checked when the service
    tags one (a file without a tag is marked unverified in the manifest that lists it)."""
    temp, digest = api.files.download(item.file.url or "", out)
    tag = str(item.file.tag or "").lower()
    if tag and tag != digest:
        temp.unlink()
        raise UsageError(f"{item.path}: downloaded content has MD5 {digest}, but the service "
                         f"tags it {tag}; nothing written")
    return item.path, temp


def _address_glob(text: str) -> str:
    """`device/lt-*`: a kind the export writes, then a glob."""
    return _kinded_glob(text, "--match", ("template", "device", "firmware"))


def _kinded_glob(text: str, option: str, kinds: tuple[str, ...]) -> str:
    """An address glob must name its kind: `pr44*` alone would match no address (they all
    start with one), and a nightly sweep written that way silently did nothing."""
    kind, _, name = text.partition("/")
    if kind.casefold() in kinds and name:
        return text
    hint = f"; did you mean '{kinds[1] if 'device' in kinds else kinds[0]}/{text}'?" \
        if "/" not in text else ""
    raise UsageError(f"{option} {text!r}: an address glob names its kind: "
                     f"{', '.join(k + '/GLOB' for k in kinds)}{hint}")


def cmd_get(opts: Options) -> int:
    """List one kind of object, sorted; JSON/YAML field names are stable."""
    from . import inventory
    from .ui import inventory as show

    a = opts.args
    try:
        kind_name = inventory.canonical(a.kind)
        inventory.check(kind_name, a.glob)
        if (a.entity is not None or a.active is not None) and kind_name != "devices":
            raise inventory.UnknownKind("--entity, --active and --inactive select devices")
        select = inventory.Select(a.template, a.entity, a.active)
        kind = inventory.KINDS[kind_name]
        fields = kind.narrow if a.output == "table" else kind.fields
        with connect(opts) as api:
            rows = inventory.rows(api, kind_name, a.glob, select, a.sort)
    except inventory.UnknownKind as exc:
        raise UsageError(str(exc)) from None
    count = show.render(rows, fields, a.output, sys.stdout, make_console())
    if not count:
        print(f"No {kind_name} match {a.glob!r}" + (f" on template {a.template}" if a.template
                                                    else "") + ".", file=sys.stderr)
    return EXIT_OK


def _offline_store(opts: Options, sealed_to: tuple[Any, ...] = ()) -> Any:
    """The key store without an account: --account CPID-ENV, or the only account folder."""
    from .apply.keys import KeyStore, KeyStoreError

    base = Path(opts.args.keys_dir)
    account = opts.args.account
    if account is None:
        folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink()
                         and not p.name.startswith(".")) if base.is_dir() else []
        if len(folders) != 1:
            raise UsageError(f"{base} holds {len(folders)} account folder(s); name one with "
                             "--account CPID-ENV")
        account = folders[0]
    try:
        return KeyStore(base, account, sealed_to)
    except KeyStoreError as exc:
        raise UsageError(str(exc)) from None


def cmd_keys(opts: Options) -> int:
    """keys list | verify | unseal | seal."""
    from .apply import keys

    a = opts.args
    try:
        if a.keys_command == "seal":
            store = _offline_store(opts, keys.recipients(a.recipient))
            done = [d for d in sorted(store.duids()) if keys.seal(store, d)]
            make_console().print(f"Sealed {len(done)} key(s) in {store.root}/; no plaintext "
                                 "key is left there.", highlight=False)
            return EXIT_OK
        if a.keys_command == "unseal":
            return _unseal(opts, keys)
        if a.keys_command == "attest":
            secret = secret_env("IOTC_KEYS_ATTEST_KEY") or secret_env("IOTC_PLAN_KEY")
            if secret is None:
                raise UsageError("keys attest needs IOTC_KEYS_ATTEST_KEY (or IOTC_PLAN_KEY): "
                                 "the secret attestations are made with")
            store = _offline_store(opts)
            store.attest_key = secret.encode()
            store.check_private()
            count = store.attest_all()
            make_console().print(f"Attested {count} kept key(s) in {store.root}/.",
                                 highlight=False)
            return EXIT_OK
        if a.keys_command == "list":
            return _keys_list(opts, keys)
        return _keys_verify(opts, keys)
    except keys.KeyStoreError as exc:
        raise UsageError(str(exc)) from None


def _unseal(opts: Options, keys: Any) -> int:
    """Write the named devices' keys (and certificates, configs) into --out, for the person
    who provisions hardware; only into a folder nobody else can read, never over a file."""
    import contextlib
    import stat

    from .safefile import create_exclusive, read_small

    a = opts.args
    out = Path(a.out)
    if not out.is_dir():
        raise UsageError(f"--out {out}: not a folder (create it with mode 700)")
    mode = stat.S_IMODE(out.stat().st_mode)
    if mode & 0o077:
        raise UsageError(f"--out {out} is readable by others (mode {mode:o}); run: "
                         f"chmod 700 {out}")
    store = _offline_store(opts)
    identity = keys.identities(Path(a.identity))
    pems = {duid: keys.private_key(store, duid, identity) for duid in a.devices}
    made: list[Path] = []  # removed again if anything fails: no plaintext key is left
    try:
        for duid, pem in pems.items():
            folder = out / duid
            if not folder.exists():
                folder.mkdir(mode=0o700)
                made.append(folder)
            for name, data in (("key.pem", pem),
                               ("cert.pem", read_small(store.folder(duid) / "cert.pem")),
                               ("iotcDeviceConfig.json",
                                read_small(store.folder(duid) / "iotcDeviceConfig.json"))):
                if not create_exclusive(folder / name, data):
                    raise UsageError(f"{folder / name} exists; nothing is overwritten, "
                                     "nothing was written")
                made.append(folder / name)
    except BaseException:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        raise
    make_console().print(f"Unsealed {len(pems)} key(s) into {out}/.", highlight=False)
    return EXIT_OK


def _keys_list(opts: Options, keys: Any) -> int:
    import fnmatch

    with connect(opts) as api:
        store = key_store(api, opts)
        live = {d.duid for t in api.templates.list() for d in api.devices.list(t.guid)}
    out = make_console()
    rows = [k for k in keys.kept(store) if fnmatch.fnmatchcase(k.duid, opts.args.glob)]
    out.print(f"{'DEVICE':<24} {'FORM':<7} {'NOT AFTER':<11} {'LIVE':<5} SUBJECT",
              highlight=False)
    for k in rows:
        out.print(f"{k.duid:<24} {k.form:<7} {k.not_after:<11} "
                  f"{'yes' if k.duid in live else 'no':<5} {k.subject}", highlight=False)
    return EXIT_OK


def _keys_verify(opts: Options, keys: Any) -> int:
    """Check what can be checked, and say what could not: kept pairs (sealed ones with
    --identity), attestations, registered certificates where the service shows them, that
    every live device of a self-signed template has a kept key, and the devices apply could
    not verify. One line per problem; exit 1 on any, or when nothing at all was verified."""
    a = opts.args
    identity = keys.identities(Path(a.identity)) if a.identity else None
    with connect(opts) as api:
        store = key_store(api, opts)
        generating = [t for t in api.templates.list() if t.auth_type == 3]
        live = {d.duid: d for t in generating for d in api.devices.list(t.guid)}
        kept = keys.kept(store)
        # one read per kept live device where the platform shows one (Azure): 10 at a time,
        # as apply runs its requests (10,000 devices at 20 ms: 20 s, not 200)
        from concurrent.futures import ThreadPoolExecutor

        on_account = [k.duid for k in kept if k.duid in live]
        with ThreadPoolExecutor(max_workers=10) as pool:
            shown = dict(zip(on_account, pool.map(
                lambda duid: api.devices.registered_certificate(live[duid].guid), on_account),
                strict=True))
    problems: list[str] = []
    pairs = unopened = attested = registered = 0
    marked = store.unverified()
    for k in kept:
        cert = _kept_text(store, k.duid)
        if k.form == "sealed" and identity is None:
            unopened += 1
        else:
            try:
                keys.private_key(store, k.duid, identity)
                pairs += 1
            except keys.KeyStoreError as exc:
                problems.append(str(exc))
        proof = store.attested(k.duid, cert)
        if proof:
            attested += 1
        elif proof is False and k.duid not in live:
            problems.append(keys.unattested_message(k.duid, store.folder(k.duid)))
        seen = shown.get(k.duid)
        if seen is not None and cert is not None:
            if (seen.pem and keys.public_key_matches(seen.pem, cert)) or \
                    (not seen.pem and seen.thumbprint == keys.thumbprint(cert)):
                registered += 1
                store.clear_unverified(k.duid)
                marked.pop(k.duid, None)
            else:
                problems.append(f"device/{k.duid}: registered with another certificate than "
                                f"the kept one ({keys.fingerprint(cert)})")
    problems += [f"device/{d}: unverified: {why}" for d, why in sorted(marked.items())]
    missing = sorted(set(live) - store.duids())
    problems += [f"device/{d}: live on a self-signed template, no key kept in {store.root}/"
                 for d in missing]
    err = make_console(sys.stderr)
    for line in problems:
        err.print(f"problem: {line}", highlight=False)
    not_attested = len(kept) - attested if store.attest_key else None
    make_console().print(
        f"{pairs} key/certificate pair(s) match; {unopened} sealed key(s) not opened (no "
        f"--identity); {registered} registered certificate(s) match; "
        + (f"{attested} attested, {not_attested} not; " if not_attested is not None else
           "attestations not checked (no IOTC_KEYS_ATTEST_KEY or IOTC_PLAN_KEY); ")
        + f"{len(problems)} problem(s).", highlight=False)
    if kept and pairs + registered + attested == 0:
        err.print("problem: nothing was verified (sealed keys need --identity; the service "
                  "shows no registered certificates here; no attestation key is set)",
                  highlight=False)
        return EXIT_ERROR
    return EXIT_ERROR if problems else EXIT_OK


def _kept_text(store: Any, duid: str) -> str | None:
    from .apply.keys import KeyStoreError, _kept_cert_text

    try:
        return _kept_cert_text(store.folder(duid) / "cert.pem")
    except KeyStoreError:
        return None


def cmd_doctor(opts: Options) -> int:
    """One line per check (ok/warn/fail); exit 1 on any failure. Read-only."""
    import dataclasses

    from . import doctor
    from .ui import doctor_report

    with connect(opts) as api:
        checks = doctor.run(api, Path(opts.args.keys_dir), opts.emulator_db is not None)
        redacted = (dataclasses.replace(c, detail=redact_text(c.detail)) for c in checks)
        passed = doctor_report.render(make_console(), redacted)
    return EXIT_OK if passed else EXIT_ERROR


def cmd_emulator_serve(opts: Options) -> int:
    from .emulator import EmulatorServer, FaultRule, Knobs, Limits

    a = opts.args
    try:
        faults = [FaultRule.parse(spec) for spec in a.fault or []]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if a.fault_rate:
        faults.append(FaultRule("*", a.fault_rate, ("503", "html502", "drop",
                                                    "commit_then_fail")))
    knobs = Knobs(latency_ms=a.latency, rate_limit=a.rate_limit, faults=faults,
                  fault_seed=a.seed)
    limits = Limits(token_lifetime=a.token_lifetime, max_page_size=a.page_size)
    Path(a.db).parent.mkdir(parents=True, exist_ok=True) if a.db != ":memory:" else None
    server = EmulatorServer(db=a.db, port=a.port, limits=limits, knobs=knobs).start()
    acc = server.emulator.state.account
    out = make_console()
    out.print(f"# IoTConnect emulator on {server.url} (state: {a.db}); Ctrl-C stops it.")
    for name, value in (("IOTC_DISCOVERY_URL", server.discovery_url),
                        ("IOTC_SKEY", acc.solution_key), ("IOTC_ENV", acc.env),
                        ("IOTC_PF", acc.pf), ("IOTC_USER", acc.user_email),
                        ("IOTC_PASS", acc.user_password)):
        out.print(f"export {name}='{value}'")
    try:
        threading.Event().wait()
    finally:
        server.stop()
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, strict and helpful: no option abbreviations (`--auto` must never come to
    mean a future option), and a mistyped command or choice gets a "did you mean"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # type: ignore[override]
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            choices = re.findall(r"'([^']*)'", found[2]) or \
                [c.strip() for c in found[2].split(",")]
            near = difflib.get_close_matches(found[1], choices, n=1, cutoff=0.6)
            if near:
                message += f"; did you mean '{near[0]}'?"
        super().error(message)


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name."""
    common = Parser(add_help=False)
    common.add_argument("--emulator", metavar="DB", default=argparse.SUPPRESS,
                        help="run against an in-process emulator whose state is the SQLite "
                             f"file DB (--emulator alone: {DEFAULT_EMULATOR_DB})")
    return common


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
    from .ui.console import help_formatter

    common = _common()
    parser = Parser(
        prog="iotc", description="Declarative reconciler for Avnet IoTConnect: keep templates, "
        "devices and firmware in YAML and let plan/apply make the account match.",
        parents=[common], formatter_class=help_formatter(),
        epilog="Start offline: iotc --emulator apply examples/manifests --auto-approve")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser = _with_parents(sub.add_parser, common)  # type: ignore[method-assign]
    _manifest_commands(sub)
    _account_commands(sub)
    _emulator_command(sub)
    completion = sub.add_parser("completion", api=False,
                                help="print a shell completion script (bash, zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")
    completion.set_defaults(run=cmd_completion)
    return parser


class _Version(argparse.Action):
    """`--version`: the package's `__version__`, the one place the version is written
    (pyproject.toml reads it for the metadata, the action's tag is checked against it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from . import __version__

        sys.stdout.write(f"{parser.prog} {__version__}\n")
        parser.exit()


def _manifest_commands(sub: Any) -> None:
    validate = sub.add_parser("validate", api=False,
                              help="check manifests (schema, references); no network")
    validate.add_argument("paths", nargs="+", metavar="PATH",
                          help="manifest files or directories (searched for *.yaml, *.yml)")
    _var_arguments(validate)
    validate.add_argument("--format", choices=("text", "github", "json"), default="text",
                          help="text (default), github (workflow commands that annotate a "
                               "pull request), json (schemas/diagnostics.schema.json)")
    validate.set_defaults(run=cmd_validate)
    plan = sub.add_parser("plan", help="show what would change in the account")
    _plan_arguments(plan)
    plan.add_argument("--out", metavar="FILE", help="save the plan for 'iotc apply FILE'")
    plan.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                      help="text for a terminal (default), markdown for a pull-request "
                           "comment, json (schemas/plan.schema.json) for tools")
    plan.add_argument("--detailed-exitcode", action="store_true",
                      help="exit 2 when there are changes, 0 when there are none")
    plan.add_argument("--destroy", action="store_true",
                      help="plan the teardown of everything declared")
    plan.add_argument("--expiry-warning", type=int, default=30, metavar="DAYS",
                      help="warn about kept certificates that expire within DAYS "
                           "(default 30)")
    plan.add_argument("--ca-cert", metavar="FILE",
                      help="the CA apply will sign with (ca-individual devices then need "
                           "no certificate file; also IOTC_CA_CERT)")
    plan.set_defaults(run=cmd_plan)
    apply = sub.add_parser("apply", help="make the changes (plans first, or applies a saved "
                                         "plan file exactly)")
    _plan_arguments(apply, "manifest files or directories, or one saved plan file")
    apply.add_argument("--manifests", action="append", metavar="PATH",
                       help="with a saved plan: the manifests it was made from (default: the "
                            "paths it records, relative to the working directory)")
    apply.add_argument("--auto-approve", action="store_true",
                       help="do not ask for confirmation (needed without a terminal)")
    _certificate_arguments(apply)
    apply.add_argument("--keys-recipient", action="append", metavar="AGE1...",
                       help="keep new device keys only sealed to this age recipient (also "
                            "IOTC_KEYS_RECIPIENTS, or Project.spec.keys.recipients); "
                            "repeatable")
    apply.add_argument("--require-sealed", action="store_true",
                       help="refuse to write a plain key or to use a store holding one (also "
                            "IOTC_KEYS_REQUIRE_SEALED=1; implied by recipients, and in CI by "
                            "a Project that declares them)")
    apply.add_argument("--report", metavar="FILE",
                       help="also write the result of every change as JSON (status done, "
                            "unverified, failed, skipped or not started)")
    apply.add_argument("--accept-unverified", action="store_true",
                       help="exit 0 when the only changes not done are unverified ones "
                            "(devices found after a lost answer whose registered certificate "
                            "the service does not show)")
    _lock_argument(apply)
    apply.set_defaults(run=cmd_apply)
    destroy = sub.add_parser("destroy", help="delete everything the manifests declare, or "
                                             "what --match names")
    _plan_arguments(destroy, prune=False, paths="*")
    destroy.add_argument("--match", action="append", metavar="ADDR-GLOB",
                         help="delete live objects whose address matches, declared or not "
                              "(e.g. 'device/pr42-*'); PATHs then only lend their "
                              "Project.protect; repeatable")
    destroy.add_argument("--allow-empty", action="store_true",
                         help="with --match: exit 0 when nothing matches (else exit 1)")
    destroy.add_argument("--older-than", metavar="DURATION",
                         help="with --match: only objects created longer ago, e.g. 24h, 7d "
                              "(templates and firmware: the service reports no device ages)")
    destroy.add_argument("--auto-approve", action="store_true",
                         help="do not ask for confirmation (needed without a terminal)")
    _lock_argument(destroy)
    destroy.set_defaults(run=cmd_destroy)


def _lock_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another apply on the same key store to "
                             "finish (default 0: refuse at once)")


def _account_commands(sub: Any) -> None:
    login = sub.add_parser("login", help="log in and store a token (never the password)")
    login.add_argument("--user", help="account e-mail (default $IOTC_USER)")
    login.add_argument("--skey", help="solution key (default $IOTC_SKEY)")
    login.add_argument("--env", help="environment, e.g. poc, prod, avnet (default $IOTC_ENV)")
    login.add_argument("--pf", choices=("aws", "az"), help="platform (default $IOTC_PF)")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input (for scripts)")
    login.set_defaults(run=cmd_login)
    sub.add_parser("logout", api=False,
                   help="forget the stored token").set_defaults(run=cmd_logout)
    sub.add_parser("whoami", help="show the logged-in account").set_defaults(run=cmd_whoami)

    get = sub.add_parser("get", help="list templates, devices, firmware or upgrades")
    get.add_argument("kind", metavar="KIND", help="templates, devices, firmware or upgrades "
                                                  "(singular, or tpl, dev, fw, up, too)")
    get.add_argument("glob", nargs="?", default="*", metavar="NAME-GLOB",
                     help="only names matching this glob (upgrades: VERSION or FW@VERSION)")
    get.add_argument("--template", metavar="CODE", help="only objects of this template")
    get.add_argument("--entity", metavar="NAME", help="only devices of this entity")
    state = get.add_mutually_exclusive_group()
    state.add_argument("--active", dest="active", action="store_const", const=True,
                       default=None, help="only active devices")
    state.add_argument("--inactive", dest="active", action="store_const", const=False,
                       help="only inactive devices")
    get.add_argument("--sort", metavar="FIELD",
                     help="sort by this field (default: the natural key, e.g. uniqueId)")
    get.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"),
                     default="table", help="table (default), wide (every field), json, yaml")
    get.set_defaults(run=cmd_get)
    export = sub.add_parser("export", help="write manifests for what the account holds "
                                           "(never keys)")
    export.add_argument("out", metavar="OUT-DIR", help="folder to write (must be empty)")
    export.add_argument("--match", action="append", metavar="ADDR-GLOB",
                        help="only matching objects (and the templates they need), e.g. "
                             "'device/lt-*'; repeatable")
    export.add_argument("--force", action="store_true",
                        help="write into a folder that is not empty")
    export.add_argument("--keys-dir", default=str(DEFAULT_KEYS_DIR), metavar="DIR",
                        help="key store: devices without a key here are exported with "
                             "certificate: external")
    export.add_argument("--parallelism", type=int, default=10, metavar="N",
                        help="concurrent requests (default 10)")
    export.set_defaults(run=cmd_export)
    _keys_commands(sub)
    doctor = sub.add_parser("doctor", help="check discovery, login, token refresh, clock, list "
                                           "permissions and the key store (read-only)")
    doctor.add_argument("--keys-dir", default=str(DEFAULT_KEYS_DIR), metavar="DIR",
                        help=f"the key store to check (default {DEFAULT_KEYS_DIR})")
    doctor.set_defaults(run=cmd_doctor)


def _keys_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", api=False, help="the device key store: list, verify, "
                                                  "unseal, seal")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True,
                               help="list, verify, unseal or seal")
    common = {"formatter_class": argparse.RawDescriptionHelpFormatter}

    def store_args(parser: argparse.ArgumentParser, account: bool) -> None:
        parser.add_argument("--keys-dir", default=str(DEFAULT_KEYS_DIR), metavar="DIR",
                            help=f"the key store (default {DEFAULT_KEYS_DIR})")
        if account:
            parser.add_argument("--account", metavar="CPID-ENV",
                                help="the account folder (default: the only one there)")

    listing = ksub.add_parser("list", parents=[_common()], help="kept keys: form, "
                              "certificate, whether the device exists live",
                              description="List the kept keys of the logged-in account.",
                              epilog="examples:\n  iotc keys list 'lt-*'", **common)
    listing.add_argument("glob", nargs="?", default="*", metavar="GLOB",
                         help="only devices matching")
    store_args(listing, False)
    verify = ksub.add_parser("verify", parents=[_common()], help="kept pairs match; live "
                             "devices have keys", description="Check every kept key against "
                             "its certificate (sealed ones with --identity) and that every "
                             "live device of a self-signed template has a kept key.",
                             epilog="examples:\n  iotc keys verify\n  iotc keys verify "
                             "--identity ~/.age/iotc.txt", **common)
    verify.add_argument("--identity", metavar="FILE", help="age identity file, to check "
                                                           "sealed keys too")
    store_args(verify, False)
    unseal = ksub.add_parser("unseal", help="write devices' keys for provisioning",
                             description="Decrypt sealed keys into a private folder, for the "
                             "person who provisions hardware. Never overwrites a file.",
                             epilog="examples:\n  mkdir -m 700 out && iotc keys unseal "
                             "lt-0001 lt-0002 --identity ~/.age/iotc.txt --out out", **common)
    unseal.add_argument("devices", nargs="+", metavar="DEVICE", help="device unique ids")
    unseal.add_argument("--identity", required=True, metavar="FILE",
                        help="age identity file (AGE-SECRET-KEY-1...)")
    unseal.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write into (mode 700)")
    store_args(unseal, True)
    seal = ksub.add_parser("seal", help="convert a plain store to the sealed form",
                           description="Encrypt every plain key.pem to the recipients and "
                           "remove the plaintext (after the sealed file is durable).",
                           epilog="examples:\n  iotc keys seal --recipient age1...", **common)
    seal.add_argument("--recipient", action="append", required=True, metavar="AGE1...",
                      help="age recipient; repeatable")
    store_args(seal, True)
    attest = ksub.add_parser(
        "attest", help="attest every kept key (once, for a store you trust)",
        description="Write an attestation beside every kept key and certificate, with "
        "IOTC_KEYS_ATTEST_KEY (else IOTC_PLAN_KEY). Apply attests the keys it makes and uses "
        "a kept key for a new device only when its attestation is right: the age recipient "
        "is public, so anyone can add a sealed key. Run this once on a store made before "
        "attestations, after checking what it holds.",
        epilog="examples:\n  IOTC_KEYS_ATTEST_KEY=... iotc keys attest", **common)
    store_args(attest, True)
    keys.set_defaults(run=cmd_keys)


def _emulator_command(sub: Any) -> None:
    emulator = sub.add_parser("emulator", api=False, help="the local IoTConnect emulator")
    esub = emulator.add_subparsers(dest="emulator_command", metavar="ACTION", required=True,
                                   help="serve: run it on 127.0.0.1")
    serve = esub.add_parser(
        "serve", help="serve the emulator on 127.0.0.1",
        description="Serve the emulator over HTTP on 127.0.0.1 and print the environment "
        "that points iotc (or the official client) at it.",
        epilog="examples:\n  iotc emulator serve --port 8080\n  iotc emulator serve --db "
        ":memory: --latency 20 --rate-limit 5\n  iotc emulator serve --fault 'POST "
        "/Device=0.2:503,drop'", formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--db", default=str(DEFAULT_EMULATOR_DB), help="SQLite state file")
    serve.add_argument("--latency", type=float, default=0.0, metavar="MS",
                       help="added latency per request")
    serve.add_argument("--fault-rate", type=float, default=0.0, metavar="F",
                       help="share of all requests that fail (5xx, HTML 502, dropped "
                            "connection, commit-then-fail)")
    serve.add_argument("--fault", action="append", metavar="SPEC",
                       help="per-route faults: 'METHOD /route=RATE[:KINDS][@N]', repeatable")
    serve.add_argument("--rate-limit", type=float, default=None, metavar="RPS",
                       help="answer 429 with Retry-After above this request rate")
    serve.add_argument("--page-size", type=int, default=None, metavar="N",
                       help="cap every page at N items, silently")
    serve.add_argument("--token-lifetime", type=int, default=86400, metavar="S",
                       help="seconds an access token lives (default 86400, as the service)")
    serve.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    serve.set_defaults(run=cmd_emulator_serve)


def _certificate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-cert", metavar="FILE",
                        help="sign device certificates of ca-signed and ca-individual "
                             "templates with this CA (also IOTC_CA_CERT)")
    parser.add_argument("--ca-key", metavar="FILE",
                        help="the CA's private key (also IOTC_CA_KEY; an encrypted one's "
                             "passphrase from IOTC_CA_KEY_PASSPHRASE); never copied")
    parser.add_argument("--cert-days", type=int, default=3650, metavar="N",
                        help="validity of generated certificates (default 3650)")


def _var_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--var", action="append", metavar="NAME=VALUE",
                        help="a variable's value (beats --var-file and IOTC_VAR_NAME); "
                             "repeatable")
    parser.add_argument("--var-file", action="append", metavar="FILE",
                        help="variable values from a YAML mapping (later files win); "
                             "repeatable")


def _plan_arguments(parser: argparse.ArgumentParser,
                    paths_help: str = "manifest files or directories", prune: bool = True,
                    paths: str = "+") -> None:
    """Arguments shared by plan, apply and destroy (destroy ignores prune globs)."""
    parser.add_argument("paths", nargs=paths, metavar="PATH", help=paths_help)
    _var_arguments(parser)
    parser.add_argument("--target", action="append", metavar="ADDR",
                        help="only this address (and what it needs), e.g. device/lt-0001")
    parser.add_argument("--exclude", action="append", metavar="ADDR",
                        help="leave this address (and what needs it) out")
    if prune:
        parser.add_argument("--no-prune", action="store_true",
                            help="do not delete undeclared objects matching Project.prune")
    parser.add_argument("--parallelism", type=int, default=10, metavar="N",
                        help="concurrent requests (default 10)")
    parser.add_argument("--keys-dir", default=str(DEFAULT_KEYS_DIR), metavar="DIR",
                        help=f"device keys and certificates (default {DEFAULT_KEYS_DIR})")


def _with_parents(add: Callable[..., Any], common: argparse.ArgumentParser) -> \
        Callable[..., Any]:
    """Every subcommand gets its description, examples and the rich help formatter; the
    ones that talk to an account (`api`) also get `--emulator`."""
    from .ui.console import help_formatter

    def add_parser(name: str, api: bool = True, **kwargs: Any) -> Any:
        description, examples = HELP.get(name, ("", ""))
        kwargs.setdefault("description", description or kwargs.get("help"))
        if examples:
            kwargs.setdefault("epilog", "examples:\n" + "\n".join(
                f"  {line}" for line in examples.splitlines()))
        return add(name, parents=[common] if api else [],
                   formatter_class=help_formatter(), **kwargs)
    return add_parser


def _expand_emulator_flag(argv: Sequence[str]) -> list[str]:
    """`--emulator` alone means the default state file; `--emulator=DB` names another.

    Done before argparse because an optional value would swallow the next word.
    """
    return [f"--emulator={DEFAULT_EMULATOR_DB}" if a == "--emulator" else a for a in argv]


STARTED = [time.monotonic()]  # when this command started (main sets it)


def main(argv: Sequence[str] | None = None) -> int:
    STARTED[0] = time.monotonic()
    parser = build_parser()
    args = parser.parse_args(_expand_emulator_flag(sys.argv[1:] if argv is None else argv))
    emulator_db = getattr(args, "emulator", None)
    opts = Options(command=args.command, args=args,
                   emulator_db=Path(emulator_db) if emulator_db else None)
    run: Callable[[Options], int] = args.run
    err = make_console(sys.stderr)
    try:
        if opts.emulator_db is not None and opts.emulator_db.is_dir():
            raise UsageError(f"--emulator={emulator_db} is a folder; name a file for the "
                             f"emulator's state, e.g. --emulator={opts.emulator_db / 'e.db'}")
        return run(opts)
    except (ApiError, UsageError) as exc:
        error(err, redact_text(str(exc)))
        return EXIT_ERROR
    except Interrupted:
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        error(err, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("IOTC_DEBUG"):
            raise
        error(err, redact_text(f"internal error: {type(exc).__name__}: {exc} (IOTC_DEBUG=1 "
                               "shows the traceback; please report it)"))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
