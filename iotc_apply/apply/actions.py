"""What each step does to the account, through the client layer.

Every action is safe to repeat: a create that failed ambiguously (the request may have been
stored) is read back by its natural key and counts as done when the object is there; a delete
of something already gone is done; an upload skips files already attached with the same MD5.
Keys are written before the device that uses them is registered. GUIDs of objects created in
this run are shared with the steps that depend on them through `guids`.
May import: `client`, `keystore`, `model`, `plan`, `safefile`, `snapshot`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..client import FIRMWARE_MODULE, IoTConnect
from ..client.errors import ABSENT, ApiError, Conflict
from ..keystore import (
    DeviceIdentity,
    KeyStore,
    KeyStoreError,
    common_name,
    device_config,
    fingerprint,
    public_key_matches,
    thumbprint,
)
from ..model import AUTH_TYPE_CODES, AUTH_TYPE_NAMES, Address, Kind
from ..plan import Action, Change, Plan, views
from ..plan.rollouts import PENDING, SUCCEEDED
from ..safefile import md5_and_size
from ..snapshot import ota_items
from .graph import Step

SELF_SIGNED = "self-signed"
OTA_BATCH = 100  # devices per OTA push
CA_TYPES = ("ca-signed", "ca-individual")


class StepFailed(Exception):
    """A step that cannot be done; the message says why, in one line."""


class StepUnverified(Exception):
    """A step whose effect is in the account but could not be verified (a device found
    after a lost answer, whose registered certificate the service does not show)."""


class Actions:
    def __init__(self, api: IoTConnect, keys: KeyStore, plan: Plan) -> None:
        self.api = api
        self.keys = keys
        self.plan = plan
        self._guids = dict(plan.guids)
        self._changes = {c.address: c for c in plan.changes}
        self._lock = threading.RLock()
        self._auth: dict[str, str] = {}

    # -- shared GUIDs --------------------------------------------------------------------------

    def guid(self, address: str) -> str:
        with self._lock:
            if address not in self._guids:
                raise StepFailed(f"{address} does not exist (was its creation skipped?)")
            return self._guids[address]

    def remember(self, address: Address | str, guid: str) -> None:
        with self._lock:
            self._guids[str(address)] = guid

    def run(self, step: Step, change: Change) -> str | None:
        """Do one step; a handler may say what it did (a rollout: the devices pushed)."""
        handler: Callable[[Change], str | None] = getattr(self, f"{step.address.kind.value}_"
                                                                f"{step.phase}")
        return handler(change)

    # -- templates -----------------------------------------------------------------------------

    def template_create(self, change: Change) -> None:
        after = change.after or {}
        template = views.template_of(after)
        guid = _create_or_find(lambda: self.api.templates.create(template),
                               lambda: _guid_of(self.api.templates.get_by_code(after["code"])))
        self.remember(change.address, guid)

    def template_update(self, change: Change) -> None:
        before, after = change.before or {}, change.after or {}
        guid = before["guid"]
        if before["name"] != after["name"]:
            self.api.templates.rename(guid, after["name"])
        self._sync(before, after, "attributes", before["attributeGuids"],
                   lambda a: self.api.templates.create_attribute(guid, views.attribute_of(a)),
                   lambda g, a: self.api.templates.update_attribute(g, guid,
                                                                    views.attribute_of(a)),
                   self.api.templates.delete_attribute,
                   lambda n: any(a.name == n for a in self.api.templates.attributes(guid)))
        self._sync(before, after, "commands", before["commandGuids"],
                   lambda c: self.api.templates.create_command(guid, views.command_of(c)),
                   lambda g, c: self.api.templates.update_command(g, guid,
                                                                  views.command_of(c)),
                   self.api.templates.delete_command,
                   lambda n: any(c.command == n for c in self.api.templates.commands(guid)))

    @staticmethod
    def _sync(before: dict[str, Any], after: dict[str, Any], key: str, guids: dict[str, str],
              create: Callable[[Any], Any], update: Callable[[str, Any], Any],
              delete: Callable[[str], Any], still: Callable[[str], bool]) -> None:
        """Adds first, then updates, then removals: a template keeps at least one attribute."""
        old, new = before[key], after[key]
        for name in sorted(set(new) - set(old)):
            create(new[name])
        for name in sorted(set(new) & set(old)):
            if new[name] != old[name]:
                update(guids[name], new[name])
        for name in sorted(set(old) - set(new)):
            _gone_ok(lambda n=name: delete(guids[n]), lambda n=name: still(n))

    def template_delete(self, change: Change) -> None:
        before = change.before or {}
        _gone_ok(lambda: self.api.templates.delete(before["guid"]),
                 lambda: self.api.templates.get_by_code(before["code"]) is not None)

    # -- devices -------------------------------------------------------------------------------

    def device_create(self, change: Change) -> None:
        after = change.after or {}
        template = f"template/{after['template']}"
        template_guid = self.guid(template)
        entity = self.plan.entities.get(after["entity"] or "")
        if entity is None:
            raise StepFailed(f"entity '{after['entity']}' does not exist")
        identity = self._identity(after, registered=change.action is Action.REPLACE)
        pem = identity.certificate_pem if identity else after.get("certificatePem")
        if identity is not None and self._template_auth(after["template"]) == "ca-signed":
            pem = None  # the CA registered for the account vouches; no device cert is sent
        found: list[bool] = []  # set when the device was found instead of created
        guid = _create_or_find(
            lambda: self.api.devices.create(template_guid, after["duid"], after["displayName"],
                                            entity, pem),
            lambda: self._existing_device(after["duid"], template_guid),
            found.append)
        self.remember(change.address, guid)
        if not after["active"]:
            self.api.devices.set_active(guid, after["duid"], False)
        if found and pem is not None:
            self._verify(after["duid"], guid, pem, identity, first_conflict=found[0])

    def _verify(self, duid: str, guid: str, pem: str, identity: DeviceIdentity | None,
                first_conflict: bool) -> None:
        """A device found instead of created (a lost answer, or a duplicate refusal) holds
        the kept key's certificate only if the service shows it does: someone else may have
        registered the DUID meanwhile. A match is done; another certificate fails, naming
        both, and a key made now is removed unused; no certificate to read is `unverified`
        (never done), marked in the key store until `keys verify` clears it."""
        registered = self.api.devices.registered_certificate(guid)
        if registered is None:
            if first_conflict:
                self._not_ours(identity)  # registered before this run's key existed
            reason = ("found after its create's answer was lost, and the service shows no "
                      "registered certificate to compare with the kept key")
            if identity is not None:
                self.keys.mark_unverified(duid, reason)
            raise StepUnverified(f"device {duid}: {reason}; check that it connects with the "
                                 "kept key, then run 'iotc keys verify'")
        if registered.pem:
            ours = public_key_matches(registered.pem, pem)
            theirs = fingerprint(registered.pem)
        else:
            ours = registered.thumbprint == thumbprint(pem)
            theirs = f"SHA-1 thumbprint {registered.thumbprint}"
        if ours:
            if identity is not None:
                self.keys.clear_unverified(duid)
            return
        removed = ", which was removed unused" if identity is not None and \
            not identity.reused else ""
        if identity is not None:
            self.keys.discard(identity)
        raise StepFailed(f"device {duid} is registered with another certificate ({theirs}) "
                         f"than the kept key's ({fingerprint(pem)}{removed}); someone else "
                         "registered it: delete the device to register it again, or restore "
                         "its key")

    def _identity(self, after: dict[str, Any], registered: bool = False) -> \
            DeviceIdentity | None:
        """The key store's identity for a device whose key apply makes: self-signed ones,
        and CA templates' when a CA was given (`--ca-cert/--ca-key`); else None."""
        if after.get("certificatePem"):
            return None  # the manifest names the certificate; its key is the user's
        auth = self._template_auth(after["template"])
        if auth != SELF_SIGNED and not (auth in CA_TYPES and self.keys.issuer.has_ca):
            return None  # TPM and symmetric-key devices, and CA ones without a CA here
        acc = self.plan.account
        try:
            return self.keys.ensure(
                after["duid"], common_name(after["duid"], acc.cpid, acc.dedicated),
                device_config(after["duid"], acc.cpid, acc.env, acc.pf, acc.dedicated,
                              AUTH_TYPE_CODES[auth]), registered)
        except KeyStoreError as exc:
            raise StepFailed(str(exc)) from exc

    def _not_ours(self, identity: DeviceIdentity | None) -> None:
        """A create refused as a duplicate on its first try, with a key this run just made:
        the device was registered before that key existed, so it cannot hold its
        certificate. Accepting it would report "done" for a device whose private key nobody
        here has; instead the unused key is removed and the step fails naming what to do.
        A kept (reused) key cannot be judged this way: the caller reports it unverified.
        """
        if identity is None or identity.reused:
            return
        self.keys.discard(identity)
        raise StepFailed(f"device {identity.duid} is already registered, with a certificate "
                         f"this key store never made (the key made now, "
                         f"{fingerprint(identity.certificate_pem)}, was removed unused); "
                         "restore the device's key folder, or delete the device to register "
                         "it again")

    def _template_auth(self, code: str) -> str:
        """The template's auth type: from the plan when it creates or changes the template,
        else read once from the account."""
        with self._lock:
            if code not in self._auth:
                self._auth[code] = self._read_auth(code)
            return self._auth[code]

    def _read_auth(self, code: str) -> str:
        change = self._changes.get(Address(Kind.TEMPLATE, code))
        if change is not None and change.after:
            return str(change.after["authType"])
        template = self.api.templates.get(self.guid(f"template/{code}"))
        return AUTH_TYPE_NAMES.get(template.auth_type, "") if template else ""

    def _existing_device(self, duid: str, template_guid: str) -> str | None:
        found = self.api.devices.get_by_duid(duid)
        if found is None:
            return None
        if found.template_guid != template_guid:
            raise StepFailed(f"device {duid} exists on another template")
        return found.guid

    def device_update(self, change: Change) -> None:
        before, after = change.before or {}, change.after or {}
        if (before["displayName"], before["entity"]) != (after["displayName"], after["entity"]):
            entity = self.plan.entities.get(after["entity"] or "")
            if entity is None:
                raise StepFailed(f"entity '{after['entity']}' does not exist")
            self.api.devices.update(before["guid"], before["duid"], after["displayName"],
                                    entity)
        if before["active"] != after["active"]:
            self.api.devices.set_active(before["guid"], before["duid"], after["active"])

    def device_delete(self, change: Change) -> None:
        before = change.before or {}
        _gone_ok(lambda: self.api.devices.delete(before["guid"]),
                 lambda: self.api.devices.get_by_duid(before["duid"]) is not None)

    def device_deactivate(self, change: Change) -> None:
        """Two-phase removal's first step: cut the device off, reversibly (a later apply
        deletes it; declaring it again reactivates it)."""
        before = change.before or {}
        self.api.devices.set_active(before["guid"], before["duid"], False)

    # -- rollouts ------------------------------------------------------------------------------

    def rollout_push(self, change: Change) -> str:
        """Push the wave the plan chose, to the devices the account still shows as never
        pushed: one with a pending or successful OTA of this upgrade is skipped (a re-run
        after a crash between push and read-back pushes no duplicates)."""
        after = change.after or {}
        upgrade = str(after["upgrade"])
        busy = {item.device_guid for item in ota_items(self.api, {upgrade})[upgrade]
                if item.status in PENDING | SUCCEEDED}
        todo = [str(d["guid"]) for d in after["devices"] if d["guid"] not in busy]
        for start in range(0, len(todo), OTA_BATCH):
            self.api.firmware.push_ota(upgrade, todo[start:start + OTA_BATCH])
        skipped = len(after["devices"]) - len(todo)
        return (f"pushed wave {after['wave']} to {len(todo)} device(s)" +
                (f" ({skipped} already had it)" if skipped else ""))

    # -- firmware and upgrades -----------------------------------------------------------------

    def firmware_create(self, change: Change) -> None:
        after = change.after or {}
        first_change = self._changes.get(
            Address(Kind.UPGRADE, f"{after['name']}@{after['firstUpgrade']}"))
        first = first_change.after if first_change else None
        template = self.guid(f"template/{after['template']}")
        found: list[str] = []

        def create() -> str:
            fw, upgrade = self.api.firmware.create(
                template, after["name"], after["hardware"], after["firstUpgrade"],
                after["description"], (first or {}).get("description"))
            found.append(upgrade)
            return fw

        def existing() -> str | None:
            fw = self.api.firmware.get_by_name(after["name"], include_deprecated=False)
            detail = self.api.firmware.get(fw.guid) if fw else None
            up = next((u for u in (detail.upgrades or ()) if u.version ==
                       after["firstUpgrade"]), None) if detail else None
            if up is not None:
                found.append(up.guid)
            return fw.guid if fw else None

        guid = _create_or_find(create, existing)
        self.remember(change.address, guid)
        self.remember(f"upgrade/{after['name']}@{after['firstUpgrade']}", found[-1])

    def firmware_update(self, change: Change) -> None:
        before, after = change.before or {}, change.after or {}
        self.api.firmware.update(before["guid"], after["name"], after["hardware"],
                                 after["description"])

    def firmware_deprecate(self, change: Change) -> None:
        self.api.firmware.deprecate((change.before or {})["guid"])

    def upgrade_create(self, change: Change) -> None:
        after = change.after or {}
        if after.get("viaFirmware"):
            guid = self.guid(str(change.address))
        else:
            firmware = self.guid(f"firmware/{after['firmware']}")
            guid = _create_or_find(
                lambda: self.api.firmware.create_upgrade(firmware, after["version"],
                                                         after["description"]),
                lambda: self._existing_upgrade(firmware, after["version"]))
            self.remember(change.address, guid)
        self._upload(guid, after["files"])
        if after["release"]:
            self._publish(guid)

    def _existing_upgrade(self, firmware: str, version: str) -> str | None:
        detail = self.api.firmware.get(firmware)
        return next((u.guid for u in (detail.upgrades or ()) if u.version == version), None) \
            if detail else None

    def upgrade_update(self, change: Change) -> None:
        before, after = change.before or {}, change.after or {}
        guid = before["guid"]
        if before["description"] != after["description"]:
            self.api.firmware.update_upgrade(guid, self.guid(f"firmware/{after['firmware']}"),
                                             after["version"], after["description"])
        self._upload(guid, after["files"])
        if after["release"] and not before["release"]:
            self._publish(guid)

    def _upload(self, guid: str, files: list[dict[str, Any]]) -> None:
        """Attach exactly `files`: skip ones already there, replace changed ones."""
        live = {(f.name, f.tag): f for f in self.api.files.list(FIRMWARE_MODULE, guid)}
        wanted = {(f["name"], f["md5"]) for f in files}
        for key, f in live.items():
            if key not in wanted:
                _gone_ok(lambda g=f.guid: self.api.files.delete(FIRMWARE_MODULE, g),
                         lambda g=f.guid: any(x.guid == g for x in
                                              self.api.files.list(FIRMWARE_MODULE, guid)))
        for f in files:
            if (f["name"], f["md5"]) in live:
                continue
            path = Path(f["path"])
            if not path.is_file() or md5_and_size(path)[0] != f["md5"]:
                raise StepFailed(f"{f['path']} changed since the plan was made; plan again")
            content = path.read_bytes()
            _create_or_find(
                lambda f=f, c=content: self.api.files.upload(FIRMWARE_MODULE, guid, f["name"], c,
                                                              f["md5"]).guid,
                lambda f=f: next((x.guid for x in self.api.files.list(FIRMWARE_MODULE, guid)
                                  if (x.name, x.tag) == (f["name"], f["md5"])), None))

    def _publish(self, guid: str) -> None:
        self.api.firmware.publish(guid)

    def upgrade_delete(self, change: Change) -> None:
        before = change.before or {}
        _gone_ok(lambda: self.api.firmware.delete_upgrade(before["guid"]),
                 lambda: self._existing_upgrade(self.guid(f"firmware/{before['firmware']}"),
                                                before["version"]) is not None)


def _guid_of(found: Any) -> str | None:
    return found.guid if found is not None else None


def _create_or_find(create: Callable[[], str], find: Callable[[], str | None],
                    found: Callable[[bool], None] | None = None, attempts: int = 3) -> str:
    """Create; after an ambiguous failure or a duplicate refusal, read back by natural key.

    A match is returned, and `found` is told (True when it was a duplicate met on the first
    try, which no earlier try of this run can have made), so a caller whose object carries
    a credential can verify it is its own. No match after an ambiguous failure proves the
    create did not take effect, so it is tried again (natural keys are unique: a late commit
    would answer 409 and be found). Never a blind retry.
    """
    for attempt in range(attempts):
        try:
            return create()
        except Conflict:
            existing = find()
            if existing is None:
                raise
            if found is not None:
                found(attempt == 0)
            return existing
        except ApiError as exc:
            if not exc.ambiguous:
                raise
            existing = find()
            if existing is not None:
                if found is not None:
                    found(False)
                return existing
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


def _gone_ok(delete: Callable[[], Any], still_there: Callable[[], bool]) -> None:
    """Deleting something already gone is success, and only that.

    A DELETE refused with 404 or 409 counts as done only when a lookup by natural key shows
    the object absent: a 404 may come from a route the service does not have, a 409 from a
    rule (devices still on a template), and a GUID from a tampered plan.
    """
    try:
        delete()
    except ABSENT as exc:
        if still_there():
            raise StepFailed(f"{exc}; the object still exists") from exc
