"""The pipeline's nouns as immutable values: addresses, live and desired resources, and
the Snapshot of the account.

Live values are what the client layer reads from the account, already normalised (upper-case
GUIDs, one spelling per field, upgrades as a tuple), so nothing downstream ever sees the
API's casing quirks. Desired values are what the manifests declare (the loader assembles them
into `manifest.Desired`). May import: `diagnostics`.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from .diagnostics import Position


class Kind(StrEnum):
    """Resource kinds, in dependency order (a kind only refers to earlier ones)."""

    ENTITY = "entity"
    TEMPLATE = "template"
    DEVICE = "device"
    FIRMWARE = "firmware"
    UPGRADE = "upgrade"
    ROLLOUT = "rollout"  # an upgrade's way onto devices, wave by wave

    def __str__(self) -> str:
        return self.value


class Address(NamedTuple):
    """`device/lt-0001`: a resource's kind and natural key; the key of every map.

    A named tuple, not a dataclass: it is hashed and compared millions of times in a plan
    of 100,000 devices, and a tuple does both in C (a frozen dataclass's `__hash__` is a
    Python call: 0.3 s of a 100,000-device load). Order is (kind, name), as before."""

    kind: Kind
    name: str

    def __str__(self) -> str:
        return self.kind + "/" + self.name  # Kind is a str; str + str is done in C

    @classmethod
    def parse(cls, text: str) -> Address:
        kind, sep, name = text.partition("/")
        if not sep or not name:
            raise ValueError(f"address {text!r}: expected KIND/NAME, e.g. device/lt-0001")
        try:
            return cls(Kind(kind), name)
        except ValueError:
            kinds = ", ".join(k.value for k in Kind)
            raise ValueError(f"address {text!r}: unknown kind {kind!r} (one of {kinds})") \
                from None


@dataclass(frozen=True)
class Identity:
    """Who is logged in where, from the access token's claims and the settings."""

    username: str
    user_guid: str
    company_guid: str
    cpid: str
    entity_guid: str
    pf: str
    env: str
    dedicated: bool


@dataclass(frozen=True)
class LiveEntity:
    guid: str
    name: str
    parent_guid: str | None


@dataclass(frozen=True)
class LiveUser:
    guid: str
    email: str
    first_name: str | None
    last_name: str | None
    role: str | None
    entity_guid: str | None


@dataclass(frozen=True)
class LiveAttribute:
    guid: str
    name: str
    data_type: str
    unit: str | None
    description: str | None
    aggregate_types: tuple[str, ...]
    sequence: int


@dataclass(frozen=True)
class LiveCommand:
    guid: str
    name: str
    command: str
    required_param: bool
    required_ack: bool
    ota: bool


@dataclass(frozen=True)
class LiveTemplate:
    guid: str
    code: str
    name: str
    auth_type: int
    message_version: str
    firmware_guid: str | None = None
    commands: tuple[LiveCommand, ...] | None = None
    created: str | None = None  # ISO-8601 `createdDate` of the list item
    device_count: int | None = None  # the list item's `deviceCount`: a paging hint only


class LiveDevice(NamedTuple):
    """A device as listed; `entity_guid` is only known from the detail read.

    A named tuple, not a dataclass, as `Address` is: a plan of 100,000 devices makes one per
    listed device, and a frozen dataclass's `__init__` (2.9 us, a Python-level setattr per
    field) was most of reading one (`client.devices.device_from_wire`)."""

    guid: str
    duid: str
    display_name: str
    template_guid: str
    active: bool
    entity_name: str | None
    entity_guid: str | None = None
    # what the listing says of the connection (None: the account shows nothing): not part
    # of the device's identity, so neither of its fingerprint
    connected: bool | None = None
    last_seen: str | None = None  # ISO-8601 time of the last connection or activity
    # the firmware upgrade the device runs, where the listing says (AZ `firmwareupgradeGuid`)
    firmware_upgrade: str | None = None


# every field of a listed device, in declaration order: its fingerprint hashes them all
_DEVICE_VALUES = operator.attrgetter(*(name for name in LiveDevice._fields
                                       if name not in ("connected", "last_seen")))


@dataclass(frozen=True)
class LiveFile:
    guid: str
    name: str
    tag: str | None
    url: str | None


@dataclass(frozen=True)
class LiveUpgrade:
    guid: str
    version: str
    draft: bool
    description: str | None
    files: tuple[LiveFile, ...] = ()


@dataclass(frozen=True)
class LiveOtaItem:
    """One device of one sent OTA update: its status (`pending, sent, success, failed,
    skipped, executed, cancelled`, AZ swagger) and when it last changed."""

    ota_guid: str
    device_guid: str
    status: str
    updated: str | None = None


@dataclass(frozen=True)
class LiveFirmware:
    guid: str
    name: str
    hardware: str
    template_guid: str
    template_code: str | None
    deprecated: bool
    description: str | None
    upgrades: tuple[LiveUpgrade, ...] | None = None
    created: str | None = None  # ISO-8601 `createdDate` of the list item


# -- desired values (what the manifests declare) ---------------------------------------------

# how a sensitive variable's value is shown wherever it would appear (plans, plan files)
MASK = "(sensitive)"

AUTH_TYPE_CODES = {"ca-signed": 2, "self-signed": 3, "tpm": 4, "symmetric-key": 5,
                   "ca-individual": 7}
AUTH_TYPE_NAMES = {code: name for name, code in AUTH_TYPE_CODES.items()}


@dataclass(frozen=True)
class DesiredAttribute:
    name: str
    data_type: str
    unit: str | None = None
    description: str | None = None
    aggregate_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class DesiredCommand:
    name: str
    command: str
    required_param: bool = False
    required_ack: bool = False
    ota: bool = False


@dataclass(frozen=True)
class DesiredTemplate:
    code: str
    name: str
    auth_type: str
    message_version: str
    attributes: tuple[DesiredAttribute, ...]
    commands: tuple[DesiredCommand, ...]
    description: str | None = None
    data_frequency: int = 60
    file_support: bool = False

    @property
    def address(self) -> Address:
        return Address(Kind.TEMPLATE, self.code)


@dataclass(frozen=True)
class CertificateFile:
    """A user-supplied device certificate: where it was named, and its PEM text."""

    path: str
    pem: str


@dataclass(frozen=True)
class DesiredDevice:
    duid: str
    template: str
    display_name: str
    entity: str | None = None
    active: bool = True
    certificate: CertificateFile | None = None  # None: generate ("auto") unless external
    device_set: str | None = None
    external: bool = False  # `certificate: external`: the device holds its own key
    # made with the device: a plan of 100,000 devices asks for it 300,000 times, and a
    # cached_property's first read takes a lock on Python 3.11 (a quarter of a big load)
    address: Address = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", Address(Kind.DEVICE, self.duid))


@dataclass(frozen=True)
class FirmwareFile:
    """A firmware file: the name devices see, where it is, and its MD5 (the upload tag)."""

    name: str
    path: str
    md5: str
    size: int


@dataclass(frozen=True)
class DesiredUpgrade:
    firmware: str
    version: str
    description: str | None
    files: tuple[FirmwareFile, ...]
    release: bool

    @property
    def address(self) -> Address:
        return Address(Kind.UPGRADE, f"{self.firmware}@{self.version}")


@dataclass(frozen=True)
class DesiredFirmware:
    name: str
    template: str
    hardware: str
    description: str | None
    upgrades: tuple[DesiredUpgrade, ...]

    @property
    def address(self) -> Address:
        return Address(Kind.FIRMWARE, self.name)


@dataclass(frozen=True)
class Globs:
    templates: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    firmwares: tuple[str, ...] = ()


@dataclass(frozen=True)
class Guards:
    """Limits every plan keeps (Project.spec.guards)."""

    max_deletes: int | None = None  # device deletes and replacements per apply
    max_deletes_percent: int | None = None  # ... as a share of each template's live devices
    online_window: float = 24 * 3600.0  # seconds since a device was seen that make it live
    allow_online: tuple[str, ...] = ()  # DUID globs whose live devices may still go
    # "deactivate-first": a device that should go is deactivated by one apply and deleted by
    # a later one, once it is still inactive and unseen for the online window
    removal: str = "delete"


@dataclass(frozen=True)
class ChangeWindow:
    """When destructive changes may run (Project.spec.windows): on `days` (0 = Monday), from
    `start` for `minutes`, in the IANA time zone `zone` (a window may run past midnight)."""

    days: frozenset[int]
    start: tuple[int, int]  # hour, minute (local)
    minutes: int
    zone: str = "UTC"


@dataclass(frozen=True)
class DesiredProject:
    name: str
    prune: Globs = Globs()
    protect: Globs = Globs()
    recipients: tuple[str, ...] = ()  # age recipients: keys are kept sealed to them
    ignore: Globs = Globs()  # undeclared live devices left alone: no ? line, no drift
    guards: Guards = Guards()
    windows: tuple[ChangeWindow, ...] = ()  # none: destructive changes may run any time


DesiredResource = DesiredTemplate | DesiredDevice | DesiredFirmware | DesiredUpgrade


@dataclass(frozen=True)
class Wave:
    """A rollout wave's size, cumulative: devices reached once it is done (a count, or a
    share of the rollout's targets)."""

    count: int | None = None
    percent: int | None = None

    def size(self, targets: int) -> int:
        if self.percent is not None:
            return min(targets, -(-targets * self.percent // 100))  # ceiling
        return min(targets, self.count or 0)

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True)
class DesiredRollout:
    """`kind: Rollout`: push a released upgrade to its targets in waves, each gated on the
    one before (success share, failures, soak time), halted at a failure share."""

    name: str
    firmware: str
    version: str
    waves: tuple[Wave, ...]
    template: str | None = None  # targets: a template's devices,
    entity: str | None = None  # an entity's (with its sub-entities),
    devices: tuple[str, ...] = ()  # or DUID globs
    gate_success: int = 100  # percent of a wave's finished devices that succeeded
    gate_max_failed: int | None = None  # failures a wave may have before the next
    soak: float = 0.0  # seconds after the wave's last success before the next
    abort_failed: int | None = None  # percent of pushed devices failed: halt
    paused: bool = False
    windows: tuple[ChangeWindow, ...] = ()  # when waves may go (none: any time)

    @property
    def address(self) -> Address:
        return Address(Kind.ROLLOUT, self.name)


@dataclass(frozen=True)
class Desired:
    """The declared state: resources and where each was declared, sorted by address."""

    resources: dict[Address, DesiredResource]
    origins: dict[Address, Position]
    project: DesiredProject | None
    rollouts: tuple[DesiredRollout, ...] = ()  # not resources: they make no object
    _of: dict[type, list[DesiredResource]] = field(default_factory=dict, init=False,
                                                   compare=False, repr=False)

    def of(self, cls: type) -> list:  # type: ignore[type-arg]
        """The resources of one kind, in address order (found once per kind: the planner
        asks for the devices seven times)."""
        found = self._of.get(cls)
        if found is None:
            found = self._of[cls] = [r for r in self.resources.values() if isinstance(r, cls)]
        return list(found)


# -- the live account as the plan reads it --------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The live account as far as the plan is concerned, keyed by natural key."""

    identity: Identity
    entities: tuple[LiveEntity, ...]
    templates: dict[str, LiveTemplate]
    attributes: dict[str, tuple[LiveAttribute, ...]]
    devices: dict[str, LiveDevice]
    firmwares: dict[str, LiveFirmware]
    files: dict[str, tuple[LiveFile, ...]] = field(default_factory=dict)
    # the OTA items of the upgrades rollouts push, by upgrade GUID (read only for those)
    ota: dict[str, tuple[LiveOtaItem, ...]] = field(default_factory=dict)

    def template_code(self, guid: str) -> str | None:
        return self._codes.get(guid)

    def entity_by_name(self, name: str | None) -> LiveEntity | None:
        if name is None:
            return next((e for e in self.entities if e.parent_guid is None), None)
        return self._entities.get(name)

    # Looked up once per device by the planner: indexes, not scans (a scan per device was
    # O(devices x templates)). The first of a name or GUID wins, as the scans did.

    @cached_property
    def _codes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for code, template in self.templates.items():
            out.setdefault(template.guid, code)
        return out

    @cached_property
    def _entities(self) -> dict[str, LiveEntity]:
        out: dict[str, LiveEntity] = {}
        for entity in self.entities:
            out.setdefault(entity.name, entity)
        return out

    def upgrades(self, firmware: str) -> dict[str, LiveUpgrade]:
        fw = self.firmwares.get(firmware)
        return {u.version: u for u in (fw.upgrades or ())} if fw else {}

    def fingerprint(self, address: Address) -> str:
        """A digest of the live object at an address ('absent' when there is none)."""
        if address.kind is Kind.DEVICE:  # the bulk: a flat record, hashed without asdict
            device = self.devices.get(address.name)
            if device is None:
                return "absent"
            # repr of a tuple of str, bool and None: exact, and done in C (json.dumps took
            # 3 us a device)
            return hashlib.sha256(repr(_DEVICE_VALUES(device)).encode()).hexdigest()[:16]
        value = self._live(address)
        if value is None:
            return "absent"
        text = json.dumps(value, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _live(self, address: Address) -> Any:
        name = address.name
        if address.kind is Kind.TEMPLATE and name in self.templates:
            template = {k: v for k, v in asdict(self.templates[name]).items()
                        if k != "device_count"}  # moves with every device: not the template
            return [template, [asdict(a) for a in self.attributes.get(name, ())]]
        if address.kind is Kind.DEVICE and name in self.devices:
            return {k: v for k, v in self.devices[name]._asdict().items()
                    if k not in ("connected", "last_seen")}
        if address.kind is Kind.FIRMWARE and name in self.firmwares:
            return {k: v for k, v in asdict(self.firmwares[name]).items() if k != "upgrades"}
        if address.kind is Kind.UPGRADE:
            firmware, _, version = name.partition("@")
            upgrade = self.upgrades(firmware).get(version)
            if upgrade is not None:
                # file URLs are signed and expire: only what identifies the content counts
                files = self.files.get(upgrade.guid, upgrade.files)
                return [upgrade.guid, upgrade.version, upgrade.draft, upgrade.description,
                        sorted((f.guid, f.name, f.tag or "") for f in files)]
        return None
