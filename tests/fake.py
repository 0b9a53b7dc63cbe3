"""An in-memory IoTConnect client (DESIGN.md section 8): the resource clients' methods that
the snapshot and the executor call, over dictionaries, with no HTTP at all.

It keeps the client's contract, not the vendor's rules (those are the emulator's): natural
keys are unique case-insensitively, a missing GUID raises `Conflict` as the client would,
and `fail(method, exc, times)` makes the next calls of a method raise, after doing the work
when `after=True` (a create whose answer was lost). Tests of the pure planner and of the
executor run on it in milliseconds; the same flows run against the emulator elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from iotc_apply.client.errors import Conflict
from iotc_apply.model import (
    AUTH_TYPE_CODES,
    DesiredAttribute,
    DesiredCommand,
    DesiredTemplate,
    Identity,
    LiveAttribute,
    LiveCommand,
    LiveDevice,
    LiveEntity,
    LiveFile,
    LiveFirmware,
    LiveTemplate,
    LiveUpgrade,
)

ROOT, CHILDREN = "Emulated Company", ("Plant-A", "Plant-B")


class FakeIoTConnect:
    """Everything `snapshot` and `apply.actions` ask of an account, in memory."""

    def __init__(self, pf: str = "aws") -> None:
        self._ids = itertools.count(1)
        self.calls: list[str] = []
        self._failures: dict[str, list[tuple[Exception, bool]]] = {}
        root = LiveEntity(self.guid(), ROOT, None)
        self.entity_list = [root] + [LiveEntity(self.guid(), n, root.guid) for n in CHILDREN]
        self.session = _Session(pf, Identity("me@example.com", "U", "C", "CPID0001",
                                             root.guid, pf, "poc", False))
        self.templates = _Templates(self)
        self.devices = _Devices(self)
        self.entities = _Entities(self)
        self.firmware = _Firmware(self)
        self.files = _Files(self)

    def guid(self) -> str:
        return f"{next(self._ids):08X}-0000-4000-8000-000000000000"

    def fail(self, method: str, exc: Exception, times: int = 1, after: bool = False) -> None:
        """The next `times` calls of `method` (e.g. "devices.create") raise `exc`; with
        `after`, each does its work first (the request was stored, the answer lost)."""
        self._failures.setdefault(method, []).extend([(exc, after)] * times)

    def enter(self, method: str, work: Callable[[], Any]) -> Any:
        self.calls.append(method)
        pending = self._failures.get(method)
        if pending:
            exc, after = pending.pop(0)
            if after:
                work()
            raise exc
        return work()


@dataclasses.dataclass
class _Settings:
    pf: str
    process_wait: float = 0.0


class _Transport:
    """No wire, so no latency to estimate an apply with."""

    answered = 0
    pool_size = 32

    def latency(self) -> float | None:
        return None


class _Throttle:
    limit = 32.0


class _Retrying:
    throttle = _Throttle()


class _Session:
    def __init__(self, pf: str, me: Identity) -> None:
        self.settings = _Settings(pf)
        self.transport = _Transport()
        self.retrying = _Retrying()
        self._me = me

    def identity(self) -> Identity:
        return self._me


def _missing(what: str) -> Conflict:
    return Conflict("FAKE", "/", 409, f"{what} doesn't exist")


class _Templates:
    def __init__(self, fake: FakeIoTConnect) -> None:
        self.fake = fake
        self.by_guid: dict[str, LiveTemplate] = {}
        self.attrs: dict[str, list[LiveAttribute]] = {}
        self.cmds: dict[str, list[LiveCommand]] = {}

    def list(self, page_size: int = 100) -> Iterator[LiveTemplate]:
        for t in list(self.by_guid.values()):
            count = sum(d.template_guid == t.guid for d in self.fake.devices.by_guid.values())
            yield dataclasses.replace(t, commands=tuple(self.cmds[t.guid]), device_count=count)

    def get(self, guid: str) -> LiveTemplate | None:
        t = self.by_guid.get(guid)
        return None if t is None else dataclasses.replace(t, commands=tuple(self.cmds[guid]))

    def get_by_code(self, code: str) -> LiveTemplate | None:
        return next((self.get(g) for g, t in self.by_guid.items()
                     if t.code.casefold() == code.casefold()), None)

    def attributes(self, guid: str) -> tuple[LiveAttribute, ...]:
        return tuple(self.attrs.get(guid, ()))

    def commands(self, guid: str) -> tuple[LiveCommand, ...]:
        return tuple(self.cmds.get(guid, ()))

    def data_types(self) -> dict[str, str]:
        return {"INTEGER": "1", "DECIMAL": "2", "STRING": "3", "OBJECT": "4"}

    def create(self, t: DesiredTemplate) -> str:
        def work() -> str:
            if self.get_by_code(t.code) is not None:
                raise Conflict("POST", "/device-template/quick", 409,
                               "Template code already exists.")
            guid = self.fake.guid()
            self.by_guid[guid] = LiveTemplate(guid, t.code, t.name, AUTH_TYPE_CODES[t.auth_type],
                                              t.message_version)
            self.attrs[guid] = [self._attribute(a) for a in t.attributes]
            self.cmds[guid] = [self._command(c) for c in t.commands]
            return guid
        return self.fake.enter("templates.create", work)  # type: ignore[no-any-return]

    def rename(self, guid: str, name: str) -> None:
        self.fake.enter("templates.rename", lambda: self._replace(guid, name=name))

    def _replace(self, guid: str, **changes: Any) -> None:
        if guid not in self.by_guid:
            raise _missing("Template")
        # LiveTemplate is a dataclass (LiveDevice, a named tuple, has `_replace`)
        self.by_guid[guid] = dataclasses.replace(self.by_guid[guid], **changes)

    def delete(self, guid: str) -> None:
        def work() -> None:
            if guid not in self.by_guid:
                raise _missing("Template")
            if any(d.template_guid == guid for d in self.fake.devices.by_guid.values()):
                raise Conflict("DELETE", f"/device-template/{guid}", 409,
                               "Template is attached with devices.")
            del self.by_guid[guid], self.attrs[guid], self.cmds[guid]
        self.fake.enter("templates.delete", work)

    def _attribute(self, a: DesiredAttribute, guid: str | None = None) -> LiveAttribute:
        return LiveAttribute(guid or self.fake.guid(), a.name, a.data_type.upper(), a.unit,
                             a.description, tuple(sorted(a.aggregate_types)), 0)

    def _command(self, c: DesiredCommand, guid: str | None = None) -> LiveCommand:
        return LiveCommand(guid or self.fake.guid(), c.name, c.command, c.required_param,
                           c.required_ack, c.ota)

    def create_attribute(self, template_guid: str, a: DesiredAttribute) -> str:
        attribute = self._attribute(a)
        self.fake.enter("templates.create_attribute",
                        lambda: self.attrs[template_guid].append(attribute))
        return attribute.guid

    def update_attribute(self, guid: str, template_guid: str, a: DesiredAttribute) -> None:
        rows = self.attrs[template_guid]
        self.fake.enter("templates.update_attribute", lambda: rows.__setitem__(
            [r.guid for r in rows].index(guid), self._attribute(a, guid)))

    def delete_attribute(self, guid: str) -> None:
        for rows in self.attrs.values():
            rows[:] = [r for r in rows if r.guid != guid]

    def create_command(self, template_guid: str, c: DesiredCommand) -> str:
        command = self._command(c)
        self.fake.enter("templates.create_command",
                        lambda: self.cmds[template_guid].append(command))
        return command.guid

    def update_command(self, guid: str, template_guid: str, c: DesiredCommand) -> None:
        rows = self.cmds[template_guid]
        rows[[r.guid for r in rows].index(guid)] = self._command(c, guid)

    def delete_command(self, guid: str) -> None:
        for rows in self.cmds.values():
            rows[:] = [r for r in rows if r.guid != guid]


class _Devices:
    def __init__(self, fake: FakeIoTConnect) -> None:
        self.fake = fake
        self.by_guid: dict[str, LiveDevice] = {}
        self.certificates: dict[str, str | None] = {}

    def list(self, template_guid: str | None = None, page_size: int = 100,
             expect: int | None = None) -> Iterator[LiveDevice]:
        yield from [d for d in self.by_guid.values()
                    if template_guid is None or d.template_guid == template_guid]

    def get_by_duid(self, duid: str) -> LiveDevice | None:
        return next((d for d in self.by_guid.values() if d.duid.casefold() == duid.casefold()),
                    None)

    def registered_certificate(self, guid: str) -> None:
        return None  # as on AWS: the service shows no registered certificate

    def create(self, template_guid: str, duid: str, display_name: str, entity_guid: str,
               certificate_pem: str | None = None) -> str:
        def work() -> str:
            if self.get_by_duid(duid) is not None:
                raise Conflict("POST", "/Device", 409, "Unique Id already exists.")
            if template_guid not in self.fake.templates.by_guid:
                raise _missing("Template")
            guid = self.fake.guid()
            entity = next(e for e in self.fake.entity_list if e.guid == entity_guid)
            self.by_guid[guid] = LiveDevice(guid, duid, display_name, template_guid, True,
                                            entity.name, entity.guid, connected=False)
            self.certificates[guid] = certificate_pem
            return guid
        return self.fake.enter("devices.create", work)  # type: ignore[no-any-return]

    def update(self, guid: str, duid: str, display_name: str, entity_guid: str) -> None:
        entity = next(e for e in self.fake.entity_list if e.guid == entity_guid)
        self.fake.enter("devices.update", lambda: self._replace(
            guid, display_name=display_name, entity_name=entity.name, entity_guid=entity.guid))

    def set_active(self, guid: str, duid: str, active: bool) -> None:
        self.fake.enter("devices.set_active", lambda: self._replace(guid, active=active))

    def _replace(self, guid: str, **changes: Any) -> None:
        if guid not in self.by_guid:
            raise _missing("Device")
        self.by_guid[guid] = self.by_guid[guid]._replace(**changes)

    def delete(self, guid: str) -> None:
        def work() -> None:
            if self.by_guid.pop(guid, None) is None:
                raise _missing("Device")
        self.fake.enter("devices.delete", work)


class _Entities:
    def __init__(self, fake: FakeIoTConnect) -> None:
        self.fake = fake

    def list(self) -> list[LiveEntity]:
        return list(self.fake.entity_list)


class _Firmware:
    def __init__(self, fake: FakeIoTConnect) -> None:
        self.fake = fake
        self.by_guid: dict[str, LiveFirmware] = {}
        self.upgrades: dict[str, list[LiveUpgrade]] = {}

    def list(self, include_deprecated: bool = True, page_size: int = 100) -> list[LiveFirmware]:
        return [dataclasses.replace(f, upgrades=None) for f in self.by_guid.values()]

    def get(self, guid: str) -> LiveFirmware | None:
        f = self.by_guid.get(guid)
        return None if f is None else dataclasses.replace(f, upgrades=tuple(self.upgrades[guid]))

    def get_by_name(self, name: str, include_deprecated: bool = True) -> LiveFirmware | None:
        return next((self.get(g) for g, f in self.by_guid.items() if f.name == name), None)

    def create(self, template_guid: str, name: str, hardware: str, version: str,
               description: str | None = None,
               upgrade_description: str | None = None) -> tuple[str, str]:
        def work() -> tuple[str, str]:
            guid, upgrade = self.fake.guid(), self.fake.guid()
            template = self.fake.templates.by_guid[template_guid]
            self.by_guid[guid] = LiveFirmware(guid, name, hardware, template_guid,
                                              template.code, False, description)
            self.upgrades[guid] = [LiveUpgrade(upgrade, version, True, upgrade_description)]
            return guid, upgrade
        return self.fake.enter("firmware.create", work)  # type: ignore[no-any-return]

    def update(self, guid: str, name: str, hardware: str, description: str | None) -> None:
        self.by_guid[guid] = dataclasses.replace(self.by_guid[guid], name=name,
                                                 hardware=hardware, description=description)

    def deprecate(self, guid: str) -> None:
        self.by_guid[guid] = dataclasses.replace(self.by_guid[guid], deprecated=True)

    def create_upgrade(self, firmware_guid: str, version: str,
                       description: str | None = None) -> str:
        guid = self.fake.guid()
        self.upgrades[firmware_guid].append(LiveUpgrade(guid, version, True, description))
        return guid

    def _upgrade(self, guid: str, **changes: Any) -> None:
        for rows in self.upgrades.values():
            for i, u in enumerate(rows):
                if u.guid == guid:
                    rows[i] = dataclasses.replace(u, **changes)
                    return
        raise _missing("Firmware upgrade")

    def update_upgrade(self, guid: str, firmware_guid: str, version: str,
                       description: str | None) -> None:
        self._upgrade(guid, version=version, description=description)

    def publish(self, guid: str) -> None:
        self.fake.enter("firmware.publish", lambda: self._upgrade(guid, draft=False))

    def delete_upgrade(self, guid: str) -> None:
        for rows in self.upgrades.values():
            rows[:] = [u for u in rows if u.guid != guid]


class _Files:
    def __init__(self, fake: FakeIoTConnect) -> None:
        self.fake = fake
        self.by_ref: dict[str, list[LiveFile]] = {}

    def upload(self, module: str, ref_guid: str, name: str, content: bytes,
               tag: str | None = None) -> LiveFile:
        made = LiveFile(self.fake.guid(), name, tag or hashlib.md5(content).hexdigest(), None)
        self.by_ref.setdefault(ref_guid, []).append(made)
        return made

    def list(self, module: str, ref_guid: str) -> tuple[LiveFile, ...]:
        return tuple(self.by_ref.get(ref_guid, ()))

    def delete(self, module: str, guid: str) -> None:
        for rows in self.by_ref.values():
            rows[:] = [f for f in rows if f.guid != guid]
