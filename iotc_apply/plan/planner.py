"""The planner: a pure function of the desired state, the snapshot and the options.

One small function decides each resource's action (`_template`, `_device`, `_firmware`,
`_upgrade`); separate passes add the deletes (destroy, prune, removed upgrades), the cascade
of template replacements, the protect check, and the target/exclude selection. No I/O: the
caller passes which local keys exist. May import: `model`.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..model import (
    Address,
    ChangeWindow,
    Desired,
    DesiredDevice,
    DesiredFirmware,
    DesiredProject,
    DesiredTemplate,
    DesiredUpgrade,
    Globs,
    Guards,
    Kind,
    LiveDevice,
    Snapshot,
)
from . import rollouts, views
from .model import (
    GUARD_CODES,
    Account,
    Action,
    Change,
    FieldChange,
    Fingerprints,
    Impact,
    Plan,
    PlanIssue,
    Reason,
    RolloutProgress,
)
from .windows import inside as windows_inside
from .windows import outside_message

REPLACE_TEMPLATE_FIELDS = ("authType", "messageVersion")
IGNORED_FIELDS = {"guid", "attributeGuids", "commandGuids", "properties", "certificate",
                  "certificatePem", "deprecated", "firstUpgrade"}


@dataclass(frozen=True)
class PlanOptions:
    destroy: bool = False
    prune: bool = True
    targets: tuple[Address, ...] = ()
    excludes: tuple[Address, ...] = ()
    local_keys: frozenset[str] = frozenset()
    ca: bool = False  # apply can sign device certificates with a CA (--ca-cert/--ca-key)
    expiring: frozenset[str] = frozenset()  # kept certificates that expire soon
    # kept keys of devices not registered yet whose attestation is missing or wrong
    unattested: frozenset[str] = frozenset()
    # the account's attribute data types, when a declared one is unconfirmed (None: unread)
    data_types: frozenset[str] | None = None
    # the aggregate types each data type allows, where the account shows them (Azure)
    aggregates: dict[str, frozenset[str]] | None = None
    # --allow-deletes N: the delete cap lifted to N for this run (None: the Project's)
    allow_deletes: int | None = None
    # --allow-online GLOB: live devices these DUID globs name may still be deleted
    allow_online: tuple[str, ...] = ()
    now: float | None = None  # when the plan is made (epoch s): the online window's end
    # --outside-window REASON: destructive changes go ahead outside the change windows
    outside_window: str | None = None
    # the service's clock (its last answer's Date): rollouts' soak times are the service's
    # times, so they are measured on its clock, whatever this machine's says
    service_now: float | None = None


@dataclass
class _Work:
    """The plan being assembled."""

    changes: dict[Address, Change] = field(default_factory=dict)
    unmanaged: list[str] = field(default_factory=list)
    ignored: int = 0  # undeclared live devices Project.spec.ignore leaves alone
    unchanged: int = 0
    warnings: list[PlanIssue] = field(default_factory=list)
    errors: list[PlanIssue] = field(default_factory=list)
    rollouts: list[RolloutProgress] = field(default_factory=list)

    def error(self, code: str, address: Address | None, message: str,
              where: object = None) -> None:
        self.errors.append(PlanIssue(code, message, str(address) if address else None,
                                     str(where) if where is not None else None))

    def warn(self, code: str, address: Address | None, message: str) -> None:
        self.warnings.append(PlanIssue(code, message, str(address) if address else None))

    def add(self, change: Change | None) -> None:
        if change is None:
            self.unchanged += 1
        else:
            self.changes[change.address] = change


def make_plan(desired: Desired, snap: Snapshot, options: PlanOptions = PlanOptions()) -> Plan:
    work = _Work()
    project = desired.project or DesiredProject("default")
    desired, snap = _case_only(desired, snap, work)
    if options.destroy:
        _destroy(desired, snap, work)
    else:
        _declared(desired, snap, work)
        _cascade(desired, snap, work)
        if options.prune:
            _prune(desired, snap, project.prune, work)
        _removed_upgrades(desired, snap, work)
        _unmanaged(desired, snap, project.ignore, work)
        _blockers(desired, snap, work)
        _external(desired, work)
        _unsigned(desired, options, work)
        _unattested(options, work)
        _data_types(desired, options, work)
        _aggregates(desired, options, work)
        _warnings(desired, snap, options, work)
        _rollouts(desired, snap, options, work)
    _protect(project.protect, work)
    _unknown_addresses(desired, snap, options, work)
    changes = _select(work.changes, options, work)
    changes = _two_phase(project.guards, changes, snap, options, work)
    changes = _online(project.guards, changes, snap, options, work)
    if not options.destroy:
        _blast_radius(project.guards, changes, desired, snap, options, work)
    _windows(project.windows, changes, options, work)
    return Plan(
        account=Account(snap.identity.pf, snap.identity.env, snap.identity.cpid,
                        snap.identity.dedicated),
        changes=tuple(sorted(changes.values(), key=lambda c: c.sort_key)),
        unchanged=work.unchanged, warnings=tuple(work.warnings), errors=tuple(work.errors),
        # what the plan read, digested only when looked at (`Fingerprints`), in address
        # order by a key compared in C
        fingerprint=Fingerprints(lambda: {
            str(a): snap.fingerprint(a) for a in sorted(
                set(desired.resources) | set(work.changes), key=lambda a: (a.kind, a.name))}),
        entities={e.name: e.guid for e in snap.entities} | _root(snap),
        guids=_guids(desired, snap), destroy=options.destroy,
        unmanaged=() if options.targets else tuple(sorted(work.unmanaged)),
        ignored=0 if options.targets else work.ignored,
        impact=_impact(changes, snap, project.guards, options, work),
        rollouts=tuple(work.rollouts))


def _case_only(desired: Desired, snap: Snapshot, work: _Work) -> tuple[Desired, Snapshot]:
    """Declared devices whose DUID the account holds in another case: a located plan error
    each, and both sides left out of the rest of the plan.

    The service compares unique IDs without case and cannot rename one, so `TH-LAB-01`
    declared over a live `th-lab-01` is one device; matched exactly, it became a delete
    and a create (50 of each, and 50 new keys, for a DeviceSet's changed `uniqueId`).
    The fold is built only when some declared DUID is not live as written.
    """
    missing = [d for d in desired.of(DesiredDevice) if d.duid not in snap.devices]
    if not missing:
        return desired, snap
    live = {duid.casefold(): duid for duid in snap.devices}
    pairs = [(d, live[d.duid.casefold()]) for d in missing if d.duid.casefold() in live]
    if not pairs:
        return desired, snap
    for d, found in pairs:
        where = desired.origins.get(d.address)
        work.error("case-only", d.address,
                   f"the account has this device as '{found}' (unique IDs are compared "
                   f"without case and cannot be renamed); write '{found}' in the manifest",
                   where)
    dropped = {d.address for d, _ in pairs}
    kept = {a: r for a, r in desired.resources.items() if a not in dropped}
    desired = Desired(kept, {a: p for a, p in desired.origins.items() if a in kept},
                      desired.project)
    gone = {found for _, found in pairs}
    devices = {k: v for k, v in snap.devices.items() if k not in gone}
    return desired, dataclasses.replace(snap, devices=devices)


def _guids(desired: Desired, snap: Snapshot) -> dict[str, str]:
    """Live GUIDs of the declared templates and firmwares, for changes that refer to them."""
    out = {f"template/{c}": t.guid for c, t in snap.templates.items()
           if Address(Kind.TEMPLATE, c) in desired.resources}
    out |= {f"firmware/{n}": f.guid for n, f in snap.firmwares.items()
            if Address(Kind.FIRMWARE, n) in desired.resources and not f.deprecated}
    return out


def make_sweep(snap: Snapshot, globs: tuple[str, ...], protect: Globs,
               older_than: datetime.datetime | None = None, everything: bool = False,
               guards: Guards | None = None, options: PlanOptions | None = None) -> Plan:
    """`destroy --match`: every live object whose address matches a glob, declared or not,
    in dependency order (the executor deletes devices before their template; firmware is
    deprecated). `older_than` keeps objects created at or after it (only kinds whose
    listing reports a creation time can be aged: the CLI refuses the others)."""
    work = _Work()

    def wanted(address: Address, created: str | None) -> bool:
        if not _matches_folded(str(address), globs):
            return False
        return older_than is None or (created is not None and _before(created, older_than))

    for code, template in snap.templates.items():
        address = Address(Kind.TEMPLATE, code)
        if wanted(address, template.created):
            work.add(_deletion(address, Reason.SWEEP, views.live_template(template, snap)))
    for duid, device in snap.devices.items():
        address = Address(Kind.DEVICE, duid)
        if wanted(address, None):
            work.add(_deletion(address, Reason.SWEEP, views.live_device(device, snap)))
    for name, fw in snap.firmwares.items():
        address = Address(Kind.FIRMWARE, name)
        if not fw.deprecated and wanted(address, fw.created):
            work.add(_deletion(address, Reason.SWEEP, views.live_firmware(fw, snap)))
    by_kind = {Kind.TEMPLATE: protect.templates, Kind.DEVICE: protect.devices,
               Kind.FIRMWARE: protect.firmwares}
    for address in sorted(work.changes):
        if _matches_folded(address.name, by_kind.get(address.kind, ())):
            del work.changes[address]  # protect wins: a sweep leaves it, and says so
            work.warn("protected", address, "protected (Project.protect); left in place")
    if not everything and older_than is None:  # an age narrows even `template/*`
        _whole_kinds(globs, work)
    options = options or PlanOptions(destroy=True)
    work.changes = _two_phase(guards or Guards(), work.changes, snap, options, work)
    work.changes = _online(guards or Guards(), work.changes, snap, options, work)  # a sweep too
    _blockers(Desired({}, {}, None), snap, work)
    return Plan(
        account=Account(snap.identity.pf, snap.identity.env, snap.identity.cpid,
                        snap.identity.dedicated),
        changes=tuple(sorted(work.changes.values(), key=lambda c: c.sort_key)),
        unchanged=0, warnings=tuple(work.warnings), errors=tuple(work.errors),
        fingerprint={str(a): snap.fingerprint(a) for a in sorted(work.changes)},
        entities={e.name: e.guid for e in snap.entities} | _root(snap), guids={},
        destroy=True, impact=_impact(work.changes, snap, guards or Guards(), options, work))


def _before(created: str, cutoff: datetime.datetime) -> bool:
    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False  # an unreadable time is never old enough to delete
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when < cutoff


def _root(snap: Snapshot) -> dict[str, str]:
    root = snap.entity_by_name(None)
    return {"": root.guid} if root else {}


# -- one decision per declared resource -------------------------------------------------------


def _declared(desired: Desired, snap: Snapshot, work: _Work) -> None:
    codes = frozenset(t.code.casefold() for t in desired.of(DesiredTemplate))
    for resource in desired.resources.values():
        if isinstance(resource, DesiredTemplate):
            _platform_auth(resource, snap, work)
            _name_taken(resource, snap, work)
            work.add(_template(resource, snap))
        elif isinstance(resource, DesiredDevice):
            work.add(_device(resource, snap, work, codes))
        elif isinstance(resource, DesiredFirmware):
            work.add(_firmware(resource, snap, work))
        elif isinstance(resource, DesiredUpgrade):
            work.add(_upgrade(resource, desired, snap, work))


def _diff(before: dict[str, Any], after: dict[str, Any],
          forces: Iterable[str] = ()) -> tuple[FieldChange, ...]:
    """Field changes between two views, at leaf level: nested maps (attributes, commands)
    by key, then each record's own fields (`attributes.temp.unit`), lists of names
    (aggregate types) as sets, item by item."""
    out = []
    for key in sorted(set(before) | set(after)):
        if key in IGNORED_FIELDS:
            continue
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    out += _leaves(f"{key}.{sub}", old.get(sub), new.get(sub))
        elif old != new:
            out.append(FieldChange(key, old, new, key in forces))
    return tuple(out)


def _leaves(name: str, old: Any, new: Any) -> list[FieldChange]:
    """A record that changed, as the leaves that changed (deepdiff, order ignored in lists);
    a record that appears or goes stays whole."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [FieldChange(name, old, new)]
    from deepdiff import DeepDiff

    out = []
    tree = DeepDiff(old, new, ignore_order=True, verbose_level=2).tree
    for kind, levels in tree.items():
        for level in levels:
            path = ".".join(str(p) for p in level.path(output_format="list")
                            if not isinstance(p, int))
            t1 = None if type(level.t1).__name__ == "NotPresent" else level.t1
            t2 = None if type(level.t2).__name__ == "NotPresent" else level.t2
            if kind.startswith("iterable_item"):
                out.append(FieldChange(f"{name}.{path}", t1 if kind.endswith("removed")
                                       else None, t2 if kind.endswith("added") else None))
            else:
                out.append(FieldChange(f"{name}.{path}", t1, t2))
    return sorted(out, key=lambda f: (f.name, str(f.before), str(f.after)))


# Auth types each platform offers (AE template swagger: AWS documents 2, 3 and 7).
PLATFORM_AUTH_TYPES = {"aws": ("self-signed", "ca-signed", "ca-individual")}


def _platform_auth(t: DesiredTemplate, snap: Snapshot, work: _Work) -> None:
    allowed = PLATFORM_AUTH_TYPES.get(snap.identity.pf)
    if allowed is not None and t.auth_type not in allowed:
        work.error("auth-type", t.address, f"authType {t.auth_type} is not offered on "
                   f"{snap.identity.pf.upper()} (it offers {', '.join(allowed)})")


def _name_taken(t: DesiredTemplate, snap: Snapshot, work: _Work) -> None:
    """A template name another live template holds: the service refuses the create or rename
    (409 DeviceTemplateNameAlreadyExists), and every device on the template would be skipped,
    so the plan says so first. Names compare without case, as the service does."""
    live = snap.templates.get(t.code)
    if live is not None and live.name == t.name:
        return
    other = next((c for c, x in snap.templates.items()
                  if c != t.code and x.name.casefold() == t.name.casefold()), None)
    if other is not None:
        work.error("name-taken", t.address, f"the name '{t.name}' is taken by the live "
                   f"template/{other} (template names are unique in an account); give this "
                   "template another name")


def _template(t: DesiredTemplate, snap: Snapshot) -> Change | None:
    after = views.desired_template(t)
    live = snap.templates.get(t.code)
    if live is None:
        return Change(t.address, Action.CREATE, Reason.NEW, None, after)
    before = views.live_template(live, snap)
    fields = _diff(before, after, REPLACE_TEMPLATE_FIELDS)
    if not fields:
        return None
    action = Action.REPLACE if any(f.forces for f in fields) else Action.UPDATE
    reason = Reason.FORCED if action is Action.REPLACE else Reason.CHANGED
    return Change(t.address, action, reason, before, after, fields)


def _device(d: DesiredDevice, snap: Snapshot, work: _Work,
            declared_templates: frozenset[str]) -> Change | None:
    after = views.desired_device(d, snap)
    if snap.entity_by_name(after["entity"]) is None:
        work.error("entity-missing", d.address, f"entity '{d.entity}' does not exist in the "
                   "account (entities are not managed by iotc-apply; create it first)")
    live = snap.devices.get(d.duid)
    if live is not None and views.unchanged_device(live, after, snap):
        return None  # the bulk of a big plan: nothing more is made for it
    depends = (Address(Kind.TEMPLATE, d.template),)
    if live is None:
        return Change(d.address, Action.CREATE, Reason.NEW, None, after, depends_on=depends)
    live_code = snap.template_code(live.template_guid) or live.template_guid
    if live_code.casefold() != d.template.casefold() and \
            live_code.casefold() not in declared_templates:
        # replacing it would delete a device of a template nothing here manages
        work.error("duid-taken", d.address,
                   f"this unique ID is live on template/{live_code}, which the manifests do "
                   "not declare (unique IDs are unique in the account); give the device "
                   f"another unique ID, or declare template/{live_code} to move it")
        return None
    before = views.live_device(live, snap)
    fields = _diff(before, after, ("template",))
    if not fields:
        return None
    action = Action.REPLACE if any(f.forces for f in fields) else Action.UPDATE
    reason = Reason.FORCED if action is Action.REPLACE else Reason.CHANGED
    return Change(d.address, action, reason, before, after, fields, depends)


def _firmware(f: DesiredFirmware, snap: Snapshot, work: _Work) -> Change | None:
    after = views.desired_firmware(f)
    depends = (Address(Kind.TEMPLATE, f.template),)
    live = snap.firmwares.get(f.name)
    if live is None or live.deprecated:
        if live is not None:
            work.warn("deprecated-name", f.address,
                      "a deprecated firmware has this name; a new one is created beside it "
                      "(if IoTConnect refuses the name, choose another)")
        return Change(f.address, Action.CREATE, Reason.NEW, None, after, depends_on=depends)
    before = views.live_firmware(live, snap)
    fields = _diff(before, after)
    for fc in fields:
        if fc.name in ("hardware", "template"):
            work.error("firmware-immutable", f.address,
                       f"{fc.name} cannot change ({fc.before} -> {fc.after}); a firmware "
                       "cannot be deleted, only deprecated: declare it under a new name")
    if not fields:
        return None
    return Change(f.address, Action.UPDATE, Reason.CHANGED, before, after, fields, depends)


def _upgrade(u: DesiredUpgrade, desired: Desired, snap: Snapshot, work: _Work) -> Change | None:
    after = views.desired_upgrade(u)
    fw_address = Address(Kind.FIRMWARE, u.firmware)
    fw_change = work.changes.get(fw_address)
    firmware = desired.resources[fw_address]
    assert isinstance(firmware, DesiredFirmware)
    live_fw = snap.firmwares.get(u.firmware)
    live = None if live_fw is None or live_fw.deprecated else \
        snap.upgrades(u.firmware).get(u.version)
    if live is None:
        if fw_change is not None and fw_change.action is Action.CREATE and \
                firmware.upgrades[0].version == u.version:
            after["viaFirmware"] = True  # created by the firmware's own creation
        return Change(u.address, Action.CREATE, Reason.NEW, None, after,
                      depends_on=(fw_address,))
    before = views.live_upgrade(live, u.firmware, snap)
    return _upgrade_update(u, before, after, work)


def _upgrade_update(u: DesiredUpgrade, before: dict[str, Any], after: dict[str, Any],
                    work: _Work) -> Change | None:
    same_files = views.file_set(before["files"]) == views.file_set(after["files"])
    fields = [f for f in _diff(before, after) if f.name != "files"]
    if not same_files:
        fields.append(FieldChange("files", [f["name"] for f in before["files"]],
                                  [f["name"] for f in after["files"]]))
    if not fields:
        return None
    if before["release"]:
        names = ", ".join(f.name for f in fields)
        work.error("released-immutable", u.address, f"released upgrades are immutable "
                   f"({names} changed); declare a new version instead")
    return Change(u.address, Action.UPDATE, Reason.CHANGED, before, after, tuple(fields),
                  (Address(Kind.FIRMWARE, u.firmware),))


# -- passes: cascade, prune, destroy, blockers, protect, selection --------------------------------


def _cascade(desired: Desired, snap: Snapshot, work: _Work) -> None:
    """A replaced template replaces every declared device on it."""
    replaced = {c.address.name for c in work.changes.values()
                if c.address.kind is Kind.TEMPLATE and c.action is Action.REPLACE}
    for code in sorted(replaced):
        for device in desired.of(DesiredDevice):
            change = work.changes.get(device.address)
            if device.template != code or device.duid not in snap.devices or (
                    change is not None and change.action is not Action.UPDATE):
                continue
            if change is None:
                work.unchanged -= 1
            before = views.live_device(snap.devices[device.duid], snap)
            work.changes[device.address] = Change(
                device.address, Action.REPLACE, Reason.CASCADE, before,
                views.desired_device(device, snap), change.fields if change else (),
                (Address(Kind.TEMPLATE, code),))


def _prune(desired: Desired, snap: Snapshot, globs: Globs, work: _Work) -> None:
    for code, template in snap.templates.items():
        address = Address(Kind.TEMPLATE, code)
        if address not in desired.resources and _matches(code, globs.templates):
            work.add(_deletion(address, Reason.PRUNE, views.live_template(template, snap)))
    for duid, device in snap.devices.items() if globs.devices else ():  # none: no pass
        address = Address(Kind.DEVICE, duid)
        if address not in desired.resources and _matches(duid, globs.devices):
            work.add(_deletion(address, Reason.PRUNE, views.live_device(device, snap)))
    for name, fw in snap.firmwares.items():
        address = Address(Kind.FIRMWARE, name)
        if address not in desired.resources and not fw.deprecated and \
                _matches(name, globs.firmwares):
            work.add(_deletion(address, Reason.PRUNE, views.live_firmware(fw, snap)))


def _unmanaged(desired: Desired, snap: Snapshot, ignore: Globs, work: _Work) -> None:
    """Live devices on a declared template that nothing declares and no prune glob takes:
    shown (never silently left), since they are part of what the manifests describe;
    those Project.spec.ignore names are counted, not shown, and are not drift."""
    declared = {snap.templates[t.code].guid for t in desired.of(DesiredTemplate)
                if t.code in snap.templates}
    ignored = _glob_matcher(ignore.devices)
    for duid, device in snap.devices.items():
        address = Address(Kind.DEVICE, duid)
        if device.template_guid in declared and address not in desired.resources and \
                address not in work.changes:
            if ignored(duid):
                work.ignored += 1
            else:
                work.unmanaged.append(str(address))


def _unknown_addresses(desired: Desired, snap: Snapshot, options: PlanOptions,
                       work: _Work) -> None:
    """A --target or --exclude that names nothing declared or live is a typo: an error with
    the nearest addresses, never a silent `No changes`."""
    if not options.targets and not options.excludes:
        return  # (the set of every name costs ~0.1 s at 100,000 devices)
    known = {str(a) for a in desired.resources} | {str(a) for a in work.changes}
    known |= {f"device/{d}" for d in snap.devices} | {f"template/{t}" for t in snap.templates}
    known |= {f"firmware/{f}" for f in snap.firmwares}
    for flag, addresses in (("--target", options.targets), ("--exclude", options.excludes)):
        for address in addresses:
            if str(address) not in known:
                near = difflib.get_close_matches(str(address), sorted(known), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                work.error("unknown-address", None, f"{flag} {address} matches nothing "
                           f"declared or in the account{hint}")


def _removed_upgrades(desired: Desired, snap: Snapshot, work: _Work) -> None:
    for fw in desired.of(DesiredFirmware):
        live = snap.firmwares.get(fw.name)
        if live is None or live.deprecated:
            continue
        declared = {u.version for u in fw.upgrades}
        for version, upgrade in sorted(snap.upgrades(fw.name).items()):
            if version not in declared:
                address = Address(Kind.UPGRADE, f"{fw.name}@{version}")
                if not upgrade.draft:
                    work.warn("released-delete", address,
                              "deleting a released upgrade: the vendor's live test does it "
                              "(tests/firmware.py:121 of its older repository), its Azure "
                              "swagger answers 409; devices that run it keep it, and should "
                              "the service refuse, apply says so")
                work.add(_deletion(address, Reason.REMOVED,
                                   views.live_upgrade(upgrade, fw.name, snap)))


def _deletion(address: Address, reason: Reason, before: dict[str, Any]) -> Change:
    action = Action.DEPRECATE if address.kind is Kind.FIRMWARE else Action.DELETE
    return Change(address, action, reason, before, None)


def _matches(name: str, globs: tuple[str, ...]) -> bool:
    """Prune globs: exact case (a glob that deletes never widens by case)."""
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def _matches_folded(name: str, globs: tuple[str, ...]) -> bool:
    """Protect and `destroy --match` globs: without case, as the service compares names
    (`th-lab-*` protects `TH-LAB-99`)."""
    folded = name.casefold()
    return any(fnmatch.fnmatchcase(folded, g.casefold()) for g in globs)


def _online(guards: Guards, changes: dict[Address, Change], snap: Snapshot,
            options: PlanOptions, work: _Work) -> dict[Address, Change]:
    """A device that is connected, or was seen within the online window, is hardware in
    use: deleting or replacing it is a plan error naming when it was last seen, unless
    `--allow-online` or Project.spec.guards.allowOnline names it. Every device delete and
    replacement carries its last-seen time (the JSON plan's `note`). Where the account shows
    no connection data the plan says so once, and never calls a device offline."""
    allowed = _glob_matcher(options.allow_online + guards.allow_online)
    unknown = 0
    out = dict(changes)
    for address, change in changes.items():
        if address.kind is not Kind.DEVICE or change.action not in (Action.DELETE,
                                                                     Action.REPLACE,
                                                                     Action.DEACTIVATE):
            continue
        device = snap.devices.get(address.name)
        if device is None:
            continue
        if device.connected is None and device.last_seen is None:
            unknown += 1
            continue
        seen = _seen(device)
        out[address] = dataclasses.replace(
            change, note=f"{change.note}; {seen}" if change.note else seen)
        if change.action is Action.DEACTIVATE:
            continue  # the reversible first step: the delete after it is guarded
        if _recent(device, guards, options) and not allowed(address.name):
            hours = guards.online_window / 3600
            work.error("online", address,
                       f"is live ({seen}; within the {hours:g} h online window): deleting it "
                       "cuts the hardware off for good; pass --allow-online "
                       f"'{address.name}' if that is the intent")
    if unknown:
        work.warn("no-connection-data", None,
                  f"the account shows no connection data for {unknown} device(s) this plan "
                  "deletes or replaces: whether they are in use was not checked")
    return out


def _impact(changes: dict[Address, Change], snap: Snapshot, guards: Guards,
            options: PlanOptions, work: _Work) -> Impact:
    """The plan's summary block: device changes counted per template and action, devices
    cut off while live, and how often each guard spoke."""
    per: dict[tuple[str, str], int] = {}
    connected = 0
    for address, change in changes.items():
        if address.kind is not Kind.DEVICE:
            continue
        side = change.after or change.before or {}
        key = (str(side.get("template") or "?"), change.action.value)
        per[key] = per.get(key, 0) + 1
        device = snap.devices.get(address.name)
        if change.action.destructive and device is not None and \
                _recent(device, guards, options):
            connected += 1
    fired: dict[str, int] = {}
    for issue in (*work.errors, *work.warnings):
        if issue.code in GUARD_CODES:
            fired[issue.code] = fired.get(issue.code, 0) + 1
    return Impact(tuple((t, a, n) for (t, a), n in sorted(per.items())), connected,
                  tuple(sorted(fired.items())))


def _rollouts(desired: Desired, snap: Snapshot, options: PlanOptions, work: _Work) -> None:
    """Each rollout's progress, and a push where its next wave is due (`plan/rollouts.py`)."""
    for rollout in desired.rollouts:
        firmware = desired.resources.get(Address(Kind.FIRMWARE, rollout.firmware))
        progress, change = rollouts.decide(
            rollout, firmware if isinstance(firmware, DesiredFirmware) else None, snap,
            options.service_now or options.now, lambda code, address, message: work.error(
                code, address, message, desired.origins.get(address) if address else None),
            work.warn)
        work.rollouts.append(progress)
        if change is not None:
            work.changes[change.address] = change


def _seen(device: LiveDevice) -> str:
    return "connected now" if device.connected else \
        f"last seen {device.last_seen}" if device.last_seen else "never seen connected"


def _recent(device: LiveDevice, guards: Guards, options: PlanOptions) -> bool:
    """Connected, or seen within the online window (an unreadable time counts as recent)."""
    if device.connected:
        return True
    if device.last_seen is None or options.now is None:
        return False
    when = _epoch(device.last_seen)
    return when is None or options.now - when <= guards.online_window


DEACTIVATE_NOTE = "deactivate; deleted by a later apply"


def _two_phase(guards: Guards, changes: dict[Address, Change], snap: Snapshot,
               options: PlanOptions, work: _Work) -> dict[Address, Change]:
    """Project.spec.guards.removal `deactivate-first`: a device delete becomes a
    deactivation while the device is active; once inactive, a later plan deletes it, but
    only when it has not been seen within the online window (deactivation releases it from
    the broker, so a device seen since was let back in: it waits, `--allow-online` aside).
    Stateless: the account's active flag and connection times are the two phases' state. A
    template whose devices are not all deleted yet waits for them."""
    if guards.removal != "deactivate-first":
        return changes
    allowed = _glob_matcher(options.allow_online + guards.allow_online)
    out = dict(changes)
    waiting: set[str] = set()  # template GUIDs that keep a device this apply
    for address, change in changes.items():
        if address.kind is not Kind.DEVICE or change.action is not Action.DELETE:
            continue
        device = snap.devices.get(address.name)
        if device is None:
            continue
        if device.active:
            out[address] = dataclasses.replace(change, action=Action.DEACTIVATE,
                                               note=DEACTIVATE_NOTE)
            waiting.add(device.template_guid)
        elif _recent(device, guards, options) and not allowed(address.name):
            del out[address]
            waiting.add(device.template_guid)
            hours = guards.online_window / 3600
            work.warn("removal-waiting", address,
                      f"inactive, but {_seen(device)}: deleted by an apply once it has not "
                      f"been seen for {hours:g} h (--allow-online '{address.name}' deletes it "
                      "now)")
    for address, change in changes.items():
        live = snap.templates.get(address.name) if address.kind is Kind.TEMPLATE else None
        if live is not None and change.action is Action.DELETE and live.guid in waiting:
            del out[address]
            work.warn("removal-waiting", address, "deleted by a later apply, after its "
                      "devices (two-phase removal)")
    return out


def _windows(windows: tuple[ChangeWindow, ...], changes: dict[Address, Change],
             options: PlanOptions, work: _Work) -> None:
    """Destructive changes outside every change window: a warning each (folded by cause),
    naming when the next window opens; apply holds them (`operations.hold`). A plan is not
    an error for it: what is allowed may still run, and a reviewer sees what waits."""
    if not windows or options.outside_window or options.now is None or \
            windows_inside(windows, options.now):
        return
    message = outside_message(windows, options.now)
    for address, change in sorted(changes.items()):
        if change.action.destructive:
            work.warn("outside-window", address, message)


def _epoch(text: str) -> float | None:
    """An ISO-8601 time as epoch seconds (UTC when it names no zone); None when unreadable,
    which counts as recent: a time that cannot be read proves nothing is offline."""
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _blast_radius(guards: Guards, changes: dict[Address, Change], desired: Desired,
                  snap: Snapshot, options: PlanOptions, work: _Work) -> None:
    """Deleting a device cuts hardware off for good (no undelete), so an apply may remove
    only so many: Project.spec.guards.maxDeletes, a count or a share of each template's live
    devices; and a template that stays while every live device on it goes (the file that
    vanished) is refused whatever the cap. `--allow-deletes N` lifts both to N for one run.
    Replacements count (they delete the device first), and so do deactivations (two-phase
    removal's first step: the cap fires when the fleet is cut off, not a day later)."""
    gone = [c for c in changes.values() if c.address.kind is Kind.DEVICE and
            c.action in (Action.DELETE, Action.REPLACE, Action.DEACTIVATE)]
    if not gone:
        return
    lifted = options.allow_deletes
    hint = f"pass --allow-deletes {len(gone)} to go ahead"
    if lifted is not None:
        if len(gone) > lifted:
            work.error("max-deletes", None, f"the plan deletes or replaces {len(gone)} "
                       f"device(s), more than the {lifted} --allow-deletes allows")
        return
    if guards.max_deletes is not None and len(gone) > guards.max_deletes:
        work.error("max-deletes", None, f"the plan deletes or replaces {len(gone)} device(s), "
                   f"more than Project.spec.guards.maxDeletes ({guards.max_deletes}); {hint}")
    live_on: dict[str, int] = {}
    for device in snap.devices.values():
        live_on[device.template_guid] = live_on.get(device.template_guid, 0) + 1
    by_template: dict[str, int] = {}
    deleted: dict[str, int] = {}  # deletes alone: a replacement leaves a device there
    for change in gone:
        device = snap.devices.get(change.address.name)
        if device is not None:
            by_template[device.template_guid] = by_template.get(device.template_guid, 0) + 1
            if change.action in (Action.DELETE, Action.DEACTIVATE):
                deleted[device.template_guid] = deleted.get(device.template_guid, 0) + 1
    staying = {t.code for t in desired.of(DesiredTemplate)}
    for guid, count in sorted(by_template.items()):
        code = snap.template_code(guid) or guid
        share = 100 * count / live_on[guid]
        if guards.max_deletes_percent is not None and share > guards.max_deletes_percent:
            work.error("max-deletes", Address(Kind.TEMPLATE, code),
                       f"the plan deletes or replaces {count} of its {live_on[guid]} live "
                       f"device(s) ({share:.0f}%), more than Project.spec.guards.maxDeletes "
                       f"({guards.max_deletes_percent}%); {hint}")
        elif deleted.get(guid) == live_on[guid] and code in staying and count > 1:
            work.error("template-emptied", Address(Kind.TEMPLATE, code),
                       f"the template stays but all {count} of its live devices would be "
                       f"deleted (a manifest file gone missing?); {hint}")


# Names unlike each other: a glob that matches all of them matches any name (`*`, `*?*`).
PROBES = ("a", "Z9", "pr-42.x_y", "0" * 64)


def _whole_kinds(globs: tuple[str, ...], work: _Work) -> None:
    """A sweep glob that matches every name of a kind (`device/*`) asks for `--all`: it
    takes whatever the account holds of that kind, this team's or not. (A narrower glob that
    happens to match everything today, `pr-*` on a test account, is what sweeps are for.)"""
    for glob in globs:
        kind, _, name = glob.partition("/")
        if all(fnmatch.fnmatchcase(p.casefold(), name.casefold()) for p in PROBES):
            work.error("whole-kind", None, f"--match {glob!r} takes every {kind.casefold()} "
                       "in the account; pass --all if that is the intent")


def _glob_matcher(globs: tuple[str, ...]) -> Callable[[str], bool]:
    """`_matches_folded` for many globs: plain names (an export lists every device it left
    out, thousands of them) are one set lookup, only real patterns are matched one by one."""
    literal = {g.casefold() for g in globs if not any(c in g for c in "*?[")}
    patterns = [g.casefold() for g in globs if g.casefold() not in literal]

    def matches(name: str) -> bool:
        folded = name.casefold()
        return folded in literal or any(fnmatch.fnmatchcase(folded, p) for p in patterns)
    return matches


def _destroy(desired: Desired, snap: Snapshot, work: _Work) -> None:
    """Every declared object that exists goes; upgrades go with their firmware."""
    for address, resource in desired.resources.items():
        if isinstance(resource, DesiredTemplate) and resource.code in snap.templates:
            before = views.live_template(snap.templates[resource.code], snap)
        elif isinstance(resource, DesiredDevice) and resource.duid in snap.devices:
            before = views.live_device(snap.devices[resource.duid], snap)
        elif isinstance(resource, DesiredFirmware) and resource.name in snap.firmwares and \
                not snap.firmwares[resource.name].deprecated:
            before = views.live_firmware(snap.firmwares[resource.name], snap)
        else:
            continue
        work.add(_deletion(address, Reason.DESTROY, before))
    _blockers(desired, snap, work, destroying=True)


def _blockers(desired: Desired, snap: Snapshot, work: _Work, destroying: bool = False) -> None:
    """A template leaving the account must take its devices and firmware with it."""
    remedy = "declare them, or keep the template: --exclude template/{code}" if destroying \
        else "declare or prune them"
    leaving = {c.address.name for c in work.changes.values() if c.address.kind is
               Kind.TEMPLATE and c.action in (Action.DELETE, Action.REPLACE)}
    for code in sorted(leaving):
        guid = snap.templates[code].guid
        staying = sorted(d.duid for d in snap.devices.values() if d.template_guid == guid and
                         Address(Kind.DEVICE, d.duid) not in work.changes)
        if staying:
            work.error("template-in-use", Address(Kind.TEMPLATE, code),
                       f"cannot be removed while {len(staying)} device(s) not in this plan "
                       f"are on it ({', '.join(staying[:3])}"
                       f"{'...' if len(staying) > 3 else ''}); {remedy.format(code=code)}")
        for name, fw in snap.firmwares.items():
            change = work.changes.get(Address(Kind.FIRMWARE, name))
            if fw.template_guid == guid and not fw.deprecated and (
                    change is None or change.action is not Action.DEPRECATE):
                work.error("template-has-firmware", Address(Kind.TEMPLATE, code),
                           f"cannot be removed while firmware {name} is attached; a firmware "
                           "cannot be deleted, only deprecated (and its name not reused)")


def _external(desired: Desired, work: _Work) -> None:
    """A device that holds its own key cannot be created or re-created from here."""
    for device in desired.of(DesiredDevice):
        change = work.changes.get(device.address)
        if device.external and change is not None and change.action in (Action.CREATE,
                                                                         Action.REPLACE):
            why = "it does not exist" if change.action is Action.CREATE else \
                f"it would be replaced ({change.reason.value})"
            work.error("external-key", device.address,
                       f"certificate is external (the device holds its own key) and {why}; "
                       "iotc-apply cannot give it a key: register it yourself, or declare it "
                       "with certificate: auto or {file: cert.pem}")


def _data_types(desired: Desired, options: PlanOptions, work: _Work) -> None:
    """An attribute of a data type the account does not offer: a plan error, not a failed
    step (`type: LONG` validated, planned, then failed apply with an internal error)."""
    if options.data_types is None:
        return
    offered = ", ".join(sorted(options.data_types))
    for template in desired.of(DesiredTemplate):
        change = work.changes.get(template.address)
        if change is None or change.action is Action.DELETE:
            continue
        for attribute in template.attributes:
            if attribute.data_type not in options.data_types:
                work.error("data-type", template.address,
                           f"attribute '{attribute.name}': data type {attribute.data_type} "
                           f"is not offered by this account (it offers {offered})")


def _aggregates(desired: Desired, options: PlanOptions, work: _Work) -> None:
    """An aggregate type the attribute's data type does not allow (the account's catalogue
    says which, on Azure): a plan error naming what is allowed, not a refused step."""
    if not options.aggregates:
        return
    for template in desired.of(DesiredTemplate):
        change = work.changes.get(template.address)
        if change is None or change.action is Action.DELETE:
            continue
        for attribute in template.attributes:
            allowed = options.aggregates.get(attribute.data_type.upper())
            wrong = [a for a in attribute.aggregate_types if allowed is not None and
                     a not in allowed]
            if wrong:
                work.error("aggregate-type", template.address,
                           f"attribute '{attribute.name}': aggregate {', '.join(wrong)} is "
                           f"not allowed for data type {attribute.data_type} (it allows "
                           f"{', '.join(sorted(allowed or ())) or 'none'})")


def _unattested(options: PlanOptions, work: _Work) -> None:
    """A device to be created with a kept key apply cannot prove it made (anyone can
    encrypt to the public age recipient, and a pull request can add key files): refused."""
    for duid in sorted(options.unattested):
        change = work.changes.get(Address(Kind.DEVICE, duid))
        if change is not None and change.action is Action.CREATE:
            work.error("unattested-key", change.address,
                       "its kept key and certificate were added outside apply (no valid "
                       "attestation); remove its key folder or attest a store you trust with "
                       "'iotc keys attest'")


def _unsigned(desired: Desired, options: PlanOptions, work: _Work) -> None:
    """A ca-individual device to be created needs a CA-signed certificate: from a file in
    the manifests, or signed by apply with --ca-cert/--ca-key."""
    individual = {t.code for t in desired.of(DesiredTemplate) if t.auth_type == "ca-individual"}
    if options.ca or not individual:
        return
    for device in desired.of(DesiredDevice):
        change = work.changes.get(device.address)
        if device.certificate is None and change is not None and \
                change.action in (Action.CREATE, Action.REPLACE) and \
                device.template in individual:
            work.error("certificate-needed", device.address,
                       f"template '{device.template}' uses ca-individual authentication: "
                       "give the device its CA-signed certificate (certificate: {file: ...}) "
                       "or let apply sign one with --ca-cert FILE --ca-key FILE")


def _warnings(desired: Desired, snap: Snapshot, options: PlanOptions, work: _Work) -> None:
    for device in desired.of(DesiredDevice):
        change = work.changes.get(device.address)
        if device.duid in snap.devices and device.certificate is None and \
                not device.external and (
                change is None or change.action is Action.UPDATE) and \
                device.duid not in options.local_keys:
            work.warn("key-not-kept", device.address,
                      "exists, but its private key is not in the key store; the device "
                      "cannot connect with a key from here")
        if device.duid in options.expiring and device.duid in snap.devices:
            work.warn("certificate-expiring", device.address,
                      "its kept certificate expires soon; replace the device before it does "
                      "(the service cannot renew a registered certificate)")
    for change in work.changes.values():
        if change.address.kind is Kind.TEMPLATE and change.action is Action.REPLACE:
            cascaded = sum(1 for c in work.changes.values() if c.reason is Reason.CASCADE and
                           c.depends_on == (change.address,))
            work.warn("template-replaced", change.address,
                      f"will be replaced: {cascaded} device(s) on it are deleted and "
                      "re-created; they drop off and must reconnect after the replacement")


def _protect(globs: Globs, work: _Work) -> None:
    by_kind = {Kind.TEMPLATE: globs.templates, Kind.DEVICE: globs.devices,
               Kind.FIRMWARE: globs.firmwares}
    for change in work.changes.values():
        patterns = by_kind.get(change.address.kind, ())
        if change.action in (Action.DELETE, Action.DEPRECATE, Action.REPLACE) and \
                _matches_folded(change.address.name, patterns):
            work.error("protected", change.address,
                       f"is protected (Project.protect) but the plan would "
                       f"{change.action.value} it ({change.reason.value})")


def _select(changes: dict[Address, Change], options: PlanOptions,
            work: _Work) -> dict[Address, Change]:
    """--target keeps targets and what they need; --exclude drops them and what needs them."""
    needs = _needs(changes)
    if options.targets:
        keep: set[Address] = set()
        todo = [a for a in options.targets if a in changes]
        while todo:
            address = todo.pop()
            if address not in keep:
                keep.add(address)
                todo += [a for a in needs.get(address, ()) if a in changes]
        if len(keep) < len(changes):
            work.warn("targeted", None, f"targeted plan: {len(changes) - len(keep)} other "
                      "change(s) are left out and still pending")
        changes = {a: c for a, c in changes.items() if a in keep}
    if options.excludes:
        dropped = set(options.excludes)
        grew = True
        while grew:
            grew = False
            for address in changes:
                if address not in dropped and any(d in dropped for d in needs.get(address, ())):
                    dropped.add(address)
                    grew = True
        changes = {a: c for a, c in changes.items() if a not in dropped}
    return changes


def _needs(changes: dict[Address, Change]) -> dict[Address, tuple[Address, ...]]:
    """What each change needs done with it: its references, and for a template leaving the
    account, the devices and firmware that must leave first."""
    out: dict[Address, tuple[Address, ...]] = {a: c.depends_on for a, c in changes.items()}
    for address, change in changes.items():
        if change.address.kind is Kind.TEMPLATE and change.action in (Action.DELETE,
                                                                      Action.REPLACE):
            out[address] += tuple(a for a, c in changes.items() if c.before and
                                  c.before.get("template") == address.name and
                                  c.action in (Action.DELETE, Action.DEPRECATE, Action.REPLACE))
    return out

