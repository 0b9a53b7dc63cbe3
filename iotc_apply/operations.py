"""The workflows below the command line, as Terraform keeps them in its backend: plan the
account, prove a saved plan, sweep, open the key store, execute and confirm.

Commands hand these typed requests (`PlanRequest`, `KeyPolicy`) and show what comes back;
nothing here parses arguments, reads the environment or prints. A workflow that cannot go
ahead raises `Refused` (one line); manifests that do not load raise `ManifestsInvalid`,
which carries their diagnostics for the caller to show.
May import: `apply`, `client`, `export`, `keystore`, `manifest`, `model`, `plan`, `safefile`,
`snapshot`; never `cli`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client.errors import ApiError, UnsupportedCall
from .client.redact import redact_text, remember
from .keystore import Issuer, KeyStore, KeyStoreError, account_folder, recipients
from .model import (
    Address,
    ChangeWindow,
    DesiredFirmware,
    DesiredTemplate,
    Globs,
    Guards,
    Kind,
)

if TYPE_CHECKING:
    from .apply.executor import ApplyResult, ChangeResult, Hooks
    from .client import IoTConnect
    from .export import Export, FileToFetch
    from .manifest import Loaded
    from .manifest.variables import Given
    from .model import DesiredProject as Project
    from .plan import Plan
    from .snapshot import Pending

Replan = Callable[[], "Plan"]


class Refused(Exception):
    """A workflow that cannot go ahead; the message says why and what to do, in one line."""


class ManifestsInvalid(Refused):
    """The manifests do not load; `loaded.diagnostics` says where and why, and the message
    (when there is one) what could not be done because of it."""

    def __init__(self, loaded: Loaded, message: str = "") -> None:
        super().__init__(message)
        self.loaded = loaded


@dataclass(frozen=True)
class PlanRequest:
    """What a plan is made from besides the account: manifests, variable inputs, options."""

    paths: tuple[str, ...]
    inputs: Given
    destroy: bool = False
    prune: bool = True
    targets: tuple[Address, ...] = ()
    excludes: tuple[Address, ...] = ()
    parallelism: int = 10
    expiry_warning: int = 30
    ca: bool = False  # apply will sign with a CA (ca-individual devices need no file)
    allow_deletes: int | None = None  # --allow-deletes N: the delete cap lifted to N
    allow_online: tuple[str, ...] = ()  # --allow-online GLOB: live devices that may go
    outside_window: str | None = None  # --outside-window REASON: no change window holds

    def recorded(self) -> dict[str, Any]:
        """The options a saved plan records, to be replayed by `replaying`."""
        return {"destroy": self.destroy, "prune": self.prune,
                "targets": [str(t) for t in self.targets],
                "excludes": [str(e) for e in self.excludes],
                "allow_deletes": self.allow_deletes, "allow_online": list(self.allow_online),
                "outside_window": self.outside_window}

    def replaying(self, options: Mapping[str, Any], paths: tuple[str, ...]) -> PlanRequest:
        """This request with a saved plan's recorded options and manifest paths."""
        return dataclasses.replace(
            self, paths=paths, destroy=bool(options["destroy"]), prune=bool(options["prune"]),
            targets=tuple(Address.parse(t) for t in options["targets"]),
            excludes=tuple(Address.parse(e) for e in options["excludes"]),
            allow_deletes=options.get("allow_deletes"),
            allow_online=tuple(options.get("allow_online") or ()),
            outside_window=options.get("outside_window"))


@dataclass(frozen=True)
class KeyPolicy:
    """Where device keys are kept and how: the keys dir, the age recipients new keys are
    sealed to (the Project's when none are given), the attestation secret, whether sealed
    keys are required, and the certificate issuer (loaded only when keys are made)."""

    keys_dir: Path
    recipients: tuple[str, ...] = ()
    attest_key: bytes | None = None
    require_sealed: bool = False
    in_ci: bool = False
    issuer: Callable[[], Issuer] = Issuer


# -- manifests and the key store ----------------------------------------------------------------


def load(request: PlanRequest, recorded: Mapping[str, Any] | None = None) -> Loaded:
    """Load and validate the manifests; `recorded`, a saved plan's variable values, counts as
    --var (its sensitive ones, recorded masked, must come from elsewhere)."""
    from .manifest import load as load_manifests
    from .manifest.variables import Given
    from .model import MASK

    inputs = request.inputs
    if recorded is not None:
        flags = {**{k: str(v) for k, v in recorded.items() if v != MASK}, **inputs.flags}
        inputs = Given(flags, inputs.files, inputs.environ)
    loaded = load_manifests(request.paths, inputs)
    if not loaded.ok:
        raise ManifestsInvalid(loaded)
    remember(*loaded.variables.secrets())
    return loaded


def open_store(api: IoTConnect, policy: KeyPolicy, project: Project | None = None,
               issuing: bool = False) -> KeyStore:
    """The logged-in account's part of the key store (`KEYS_DIR/<cpId>-<env>/`), sealed to
    the policy's recipients, else to the Project's."""
    me = api.session.identity()
    given = list(policy.recipients) or (list(project.recipients) if project else [])
    try:
        store = KeyStore(policy.keys_dir, account_folder(me.cpid, me.env), recipients(given),
                         policy.issuer() if issuing else None, policy.attest_key)
        store.check_private()
        return store
    except KeyStoreError as exc:
        raise Refused(str(exc)) from None


def migrate(store: KeyStore) -> tuple[dict[str, int], list[str]]:
    """Move a key store of the flat layout into per-account folders (under the run lock)."""
    try:
        return store.migrate()
    except (OSError, KeyStoreError) as exc:
        raise Refused(f"cannot move the key store into per-account folders: {exc}") from None


def require_sealed(policy: KeyPolicy, store: KeyStore, plan: Plan,
                   project: Project | None) -> None:
    """Sealed means sealed: when recipients are configured (flag, environment, Project),
    sealed keys are required (flag or environment), or in CI a Project declares recipients,
    apply refuses before the first create to write a plain key or to use a store that holds
    one. A store that holds sealed keys gets no plain key beside them whatever the settings
    (a missing recipient secret in CI once wrote plain keys that the workflow then refused to
    commit, lost with the runner)."""
    from .plan import Action

    if plan.destroy:
        return  # a teardown writes no key: custody never stands in its way
    makes_keys = any(c.address.kind is Kind.DEVICE and c.action in (Action.CREATE,
                                                                     Action.REPLACE)
                     for c in plan.changes)
    declared = bool(project is not None and project.recipients)
    required = bool(store.sealed_to) or policy.require_sealed or (declared and policy.in_ci)
    plain, sealed = store.forms()
    if required and plain:
        raise Refused(f"{store.root} holds {plain} plain key(s) and sealed keys are "
                      "required; seal them first: iotc keys seal --recipient AGE1...")
    if makes_keys and not store.sealed_to and (required or sealed):
        why = f"the store holds {sealed} sealed key(s)" if sealed else "sealed keys are required"
        raise Refused(f"{why}, but no age recipient is given, so apply would write plain "
                      "keys: set IOTC_KEYS_RECIPIENTS (or --keys-recipient, or "
                      "Project.spec.keys.recipients)")


# -- plans ----------------------------------------------------------------------------------------


def early_snapshot(api: IoTConnect, parallelism: int) -> Pending:
    """The account's listings, started before the manifests load (they do not depend on
    them), as a context. A failure (no login, no network) surfaces when the plan needs the
    snapshot, so manifest errors are still reported first; manifests that do not load stop
    it."""
    from . import snapshot

    return snapshot.start(api, parallelism)


def plan_account(api: IoTConnect, loaded: Loaded, request: PlanRequest, policy: KeyPolicy,
                 pending: Pending | None = None) -> Plan:
    """Snapshot the account (list endpoints, in parallel) and plan against it; the plan
    records what it was made from (manifest paths and digest, options). `pending`, a
    snapshot started before the manifests loaded, is finished rather than a new one taken;
    the key store is scanned while its listings run."""
    from . import snapshot
    from .plan import PlanOptions, make_plan, planfile
    from .plan.model import Source

    desired = loaded.desired
    with ExitStack() as stack:
        if pending is None:
            pending = stack.enter_context(snapshot.start(api, request.parallelism))
        store = open_store(api, policy)
        kept = store.folders()
        options = PlanOptions(destroy=request.destroy, prune=request.prune,
                              targets=request.targets, excludes=request.excludes,
                              local_keys=kept, ca=request.ca,
                              allow_deletes=request.allow_deletes,
                              allow_online=request.allow_online, now=time.time(),
                              outside_window=request.outside_window,
                              expiring=store.expiring(request.expiry_warning, kept))
        snap = pending.finish([t.code for t in desired.of(DesiredTemplate)],
                              [f.name for f in desired.of(DesiredFirmware)])
    if desired.rollouts and not request.destroy:  # their state: the account's OTA records
        snap = snapshot.with_ota(api, snap, _rollout_upgrades(desired, snap),
                                 request.parallelism)
        options = dataclasses.replace(options, service_now=_service_now(api))
    if not request.destroy and kept:  # kept keys of devices not registered yet
        options = dataclasses.replace(options,
                                      unattested=store.unattested(kept - snap.devices.keys()))
    if not request.destroy and _unconfirmed_types(loaded):  # one request, when it matters
        options = dataclasses.replace(options,
                                      data_types=frozenset(api.templates.data_types()))
    if not request.destroy and snap.identity.pf == "az" and _aggregated(loaded):
        # only Azure's catalogue says which aggregates a data type allows (one request); a
        # check, not a need: a service without the route plans as before, and refuses at
        # apply what it does not allow
        with contextlib.suppress(UnsupportedCall):
            options = dataclasses.replace(options, aggregates=api.templates.aggregates())
    plan = with_estimate(api, make_plan(desired, snap, options), request.parallelism)
    recorded, variables = request.recorded(), loaded.variables.recorded()
    digest = planfile.source_digest(loaded.digest, recorded, variables)
    return dataclasses.replace(plan, source=Source(request.paths, digest, recorded, variables),
                               secrets=frozenset(loaded.variables.secrets()))


def with_estimate(api: IoTConnect, plan: Plan, parallelism: int) -> Plan:
    """The plan with its apply estimated at the latency its own reads met (the session's
    mean so far) and `parallelism`, capped by the connection pool and by the rate the
    service allowed (the AIMD throttle's limit after any 429); the read-back that confirms
    an apply is counted as about the reads this plan made."""
    from .apply.estimate import estimate

    transport = api.session.transport
    latency = transport.latency()
    if latency is None or not plan.changes:
        return plan
    # the service's rate as the client met it: a 429 halves the throttle's limit
    throttled = int(api.session.retrying.throttle.limit)
    width = max(1, min(parallelism, transport.pool_size, throttled))
    read_back = transport.answered * latency / width
    guess = estimate(plan, latency, width, read_back)
    return dataclasses.replace(plan, impact=dataclasses.replace(plan.impact, estimate=guess))


def _service_now(api: IoTConnect) -> float | None:
    """The service's clock, from the Date header of its last answer (None: none seen)."""
    import email.utils

    date = api.session.transport.last_date
    try:
        return email.utils.parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        return None


def _rollout_upgrades(desired: Any, snap: Any) -> list[str]:
    """GUIDs of the live upgrades the rollouts push."""
    return [u.guid for r in desired.rollouts
            if (u := snap.upgrades(r.firmware).get(r.version)) is not None]


def _aggregated(loaded: Loaded) -> bool:
    return any(a.aggregate_types for t in loaded.desired.of(DesiredTemplate)
               for a in t.attributes)


def _unconfirmed_types(loaded: Loaded) -> bool:
    from .manifest.kinds import UNCONFIRMED_TYPES

    return any(a.data_type in UNCONFIRMED_TYPES for t in loaded.desired.of(DesiredTemplate)
               for a in t.attributes)


@dataclass(frozen=True)
class Proven:
    """A saved plan proven current: the plan made now (what runs), how to make it again
    (the read-back), and the Project of its manifests."""

    plan: Plan
    replan: Replan
    project: Project | None


def prove_saved_plan(api: IoTConnect, path: Path, request: PlanRequest, policy: KeyPolicy,
                     plan_key: str | None, manifests: tuple[str, ...] = ()) -> Proven:
    """A saved plan, only if it is exactly what the same manifests and options give now.

    The file is untrusted (an artifact between CI jobs): it must parse, match the schema and
    carry a valid signature when a plan key is set; the manifests it names (or `manifests`)
    must have the digest it recorded; and a plan made now from them, with its recorded
    options, must equal it part for part. What runs is the plan made now.
    """
    from .plan import planfile

    try:
        saved, document = planfile.read(path, plan_key)
    except planfile.PlanFileError as exc:
        raise Refused(str(exc)) from None
    if saved.errors:  # e.g. saved with `plan --format json >`, which keeps errors
        raise Refused(f"{path}: the plan has {len(saved.errors)} error(s) and cannot be "
                      f"applied: {saved.errors[0]}")
    if saved.source is None:
        raise Refused(f"{path}: the plan records no manifests; make it with 'iotc plan --out'")
    _check_account(api, saved)
    given = manifests or saved.source.paths
    try:
        loaded = load(dataclasses.replace(request, paths=tuple(given)), saved.source.variables)
    except ManifestsInvalid as exc:
        raise ManifestsInvalid(exc.loaded, f"{path}: the manifests it was made from "
                               f"({' '.join(given)}) do not load") from None
    if planfile.source_digest(loaded.digest, saved.source.options,
                              loaded.variables.recorded()) != saved.source.digest:
        raise Refused(f"{path}: the manifests in {' '.join(given)} (or the plan's options) "
                      "differ from the ones the plan was made from; run 'iotc plan' again "
                      "(or pass --manifests PATH)")
    try:
        again = request.replaying(saved.source.options, saved.source.paths)
    except ValueError as exc:  # a recorded address the schema let through
        raise Refused(f"{path}: {exc}") from None
    fresh = plan_account(api, loaded, again, policy)
    changed = planfile.stale(saved, fresh.fingerprint)
    if changed:
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise Refused(f"plan is stale: {len(changed)} object(s) changed since it was made "
                      f"({shown}); run 'iotc plan' again")
    differs = planfile.difference(document, fresh)
    if differs:
        raise Refused(f"{path}: not the plan the manifests and the account give now: "
                      f"{differs}; run 'iotc plan' again")
    return Proven(fresh, lambda: plan_account(api, loaded, again, policy),
                  loaded.desired.project)


def _check_account(api: IoTConnect, plan: Plan) -> None:
    """Refuse a plan made for another account."""
    me = api.session.identity()
    acc = plan.account
    if (me.cpid, me.pf, me.env) != (acc.cpid, acc.pf, acc.env):
        raise Refused(f"the plan was made for {acc.pf}/{acc.env} cpId {acc.cpid}, not for "
                      f"this account ({me.pf}/{me.env} cpId {me.cpid})")


def sweep(api: IoTConnect, globs: tuple[str, ...], protect: Globs,
          older_than: datetime.timedelta | None, parallelism: int,
          everything: bool = False, guards: Guards | None = None,
          allow_online: tuple[str, ...] = ()) -> tuple[Plan, Replan]:
    """`destroy --match`: live objects by address glob, declared or not, except what
    `protect` names; with `older_than`, only templates and firmware created before then;
    taking every object of a kind needs `everything` (`--all`)."""
    from . import snapshot
    from .plan import PlanOptions, make_sweep

    cutoff = None if older_than is None else datetime.datetime.now(datetime.UTC) - older_than

    def plan() -> Plan:
        snap = snapshot.take(api, None, None, parallelism=parallelism)
        return with_estimate(api, make_sweep(snap, globs, protect, cutoff, everything, guards,
                                             PlanOptions(destroy=True,
                                                         allow_online=allow_online,
                                                         now=time.time())), parallelism)
    return plan(), plan


# -- execution ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """What a change window keeps from this apply: the changes, each with why."""

    results: tuple[ChangeResult, ...] = ()
    reason: str = ""  # --outside-window REASON when it let them run


def hold(plan: Plan, windows: tuple[ChangeWindow, ...], reason: str | None,
         now: float) -> tuple[Plan, Held]:
    """The plan to run now and what waits: outside every change window, destructive changes
    (deletes, replacements, deactivations) are held, and so is every change that needs one
    (a template's delete after its devices'). Checked when apply runs, not when the plan was
    made: a saved plan reviewed inside a window and applied after it closed is held too."""
    from .apply.executor import ChangeResult, Status
    from .apply.graph import build
    from .plan.windows import inside, outside_message

    if not windows or reason or inside(windows, now):
        return plan, Held(reason=reason or "")
    message = outside_message(windows, now)
    graph = build(plan)
    dependents = graph.dependents()
    why = {c.address: message for c in plan.changes if c.action.destructive}
    todo = [s for s in graph.steps if s.address in why]
    while todo:
        step = todo.pop()
        for dependent in dependents[step]:
            if dependent.address not in why:
                why[dependent.address] = f"needs {step.address}, which is held (outside " \
                    "the change window)"
                todo += [s for s in graph.steps if s.address == dependent.address]
    if not why:
        return plan, Held()
    kept = tuple(c for c in plan.changes if c.address not in why)
    held = tuple(ChangeResult(c.address, c.action, Status.HELD, why[c.address])
                 for c in plan.changes if c.address in why)
    return dataclasses.replace(plan, changes=kept), Held(held)


def execute_and_confirm(api: IoTConnect, plan: Plan, store: KeyStore, parallelism: int,
                        hooks: Hooks, replan: Replan, started: float,
                        held: Held = Held()) -> ApplyResult:
    """Execute the plan, then read the account back: a change is `done` only where the
    account shows it. `started` is when the command began (the report gives its time);
    `held` (see `hold`) is reported beside what ran."""
    from .apply.actions import Actions
    from .apply.executor import execute

    result = execute(plan, Actions(api, store, plan), parallelism, hooks)
    result = dataclasses.replace(result, seconds=time.monotonic() - started)
    if not result.interrupted:
        try:
            result = result.confirmed(_still_planned(plan, replan()))
        except ApiError as exc:  # the changes stand; only their confirmation is missing
            result = result.not_confirmed(redact_text(str(exc)))
    return result.with_held(held.results, held.reason)


def _still_planned(plan: Plan, fresh: Plan) -> dict[Address, Any]:
    """What a fresh plan still has to do of this plan's changes. A rollout's push is still
    to do only if the fresh plan would push one of the same devices again: a push of the
    next wave (its devices are others) means this one took."""
    from .plan import Action

    pushed = {str(d["guid"]) for c in plan.changes if c.action is Action.PUSH
              for d in (c.after or {}).get("devices", ())}
    return {c.address: c.action for c in fresh.changes
            if c.action is not Action.PUSH or
            pushed & {str(d["guid"]) for d in (c.after or {}).get("devices", ())}}


# -- export ---------------------------------------------------------------------------------------


def write_export(api: IoTConnect, result: Export, out: Path, parallelism: int) -> None:
    """Write an export into `out`: every download first (streamed into temp files in `out`,
    MD5 checked), then the manifests and files; a failed or refused download leaves nothing
    behind, and a folder this made stays only when something was written."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from .safefile import OutsideRoot, inside, write_private

    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            downloads = list(pool.map(lambda item: _fetch(api, out, item), result.fetch))
        for name, text in sorted(result.files.items()):
            write_private(inside(out, name), text.encode(), mode=0o644)
        for name, temp in downloads:
            os.chmod(temp, 0o644)
            os.replace(temp, inside(out, name))
    except OutsideRoot as exc:
        raise Refused(f"export: {exc}; nothing more written") from None
    finally:
        for leftover in out.glob(".download.*"):
            leftover.unlink(missing_ok=True)
        if made and not any(out.iterdir()):
            out.rmdir()


def _fetch(api: IoTConnect, out: Path, item: FileToFetch) -> tuple[str, Path]:
    """One upgrade file streamed into a temp file in `out`, its MD5 checked when the service
    tags one (a file without a tag is marked unverified in the manifest that lists it)."""
    temp, digest = api.files.download(item.file.url or "", out)
    tag = str(item.file.tag or "").lower()
    if tag and tag != digest:
        temp.unlink()
        raise Refused(f"{item.path}: downloaded content has MD5 {digest}, but the service "
                      f"tags it {tag}; nothing written")
    return item.path, temp


# -- key custody against the account -----------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What `keys verify` found: one line per problem, and how much could be checked."""

    problems: tuple[str, ...]
    kept: int
    pairs: int  # kept key/certificate pairs that match
    unopened: int  # sealed keys not opened (no identity)
    registered: int  # registered certificates that match the kept ones
    attested: int
    attestations_checked: bool

    @property
    def nothing_verified(self) -> bool:
        return bool(self.kept) and self.pairs + self.registered + self.attested == 0


def verify_keys(api: IoTConnect, store: KeyStore, identity: list[Any] | None) -> Verification:
    """Check what can be checked: kept pairs (sealed ones with an identity), attestations,
    registered certificates where the service shows them (one read per kept live device, 10
    at a time, as apply runs its requests), that every live device of a self-signed template
    has a kept key, and the devices apply could not verify; clears a device's unverified
    marker once its registered certificate is seen to match."""
    from concurrent.futures import ThreadPoolExecutor

    from . import keystore
    from .model import AUTH_TYPE_CODES

    generating = [t for t in api.templates.list()
                  if t.auth_type == AUTH_TYPE_CODES["self-signed"]]
    live = {d.duid: d for t in generating for d in api.devices.list(t.guid)}
    kept = keystore.kept(store)
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
                keystore.private_key(store, k.duid, identity)
                pairs += 1
            except KeyStoreError as exc:
                problems.append(str(exc))
        proof = store.attested(k.duid, cert)
        if proof:
            attested += 1
        elif proof is False and k.duid not in live:
            problems.append(keystore.unattested_message(k.duid, store.folder(k.duid)))
        seen = shown.get(k.duid)
        if seen is not None and cert is not None:
            if (seen.pem and keystore.public_key_matches(seen.pem, cert)) or \
                    (not seen.pem and seen.thumbprint == keystore.thumbprint(cert)):
                registered += 1
                store.clear_unverified(k.duid)
                marked.pop(k.duid, None)
            else:
                problems.append(f"device/{k.duid}: registered with another certificate than "
                                f"the kept one ({keystore.fingerprint(cert)})")
    problems += [f"device/{d}: unverified: {why}" for d, why in sorted(marked.items())]
    problems += [f"device/{d}: live on a self-signed template, no key kept in {store.root}/"
                 for d in sorted(set(live) - store.duids())]
    return Verification(tuple(problems), len(kept), pairs, unopened, registered, attested,
                        store.attest_key is not None)


def _kept_text(store: KeyStore, duid: str) -> str | None:
    from .keystore import kept_cert_text

    try:
        return kept_cert_text(store.folder(duid) / "cert.pem")
    except KeyStoreError:
        return None


def live_duids(api: IoTConnect) -> set[str]:
    """Every device's DUID, for `keys list` (one listing per template)."""
    return {d.duid for t in api.templates.list() for d in api.devices.list(t.guid)}
