"""Build a live account from manifests straight through the client layer (no planner, no
executor), so tests can start from a known state and check that plans agree with it."""

from __future__ import annotations

from pathlib import Path

from iotc_apply.client import FIRMWARE_MODULE, IoTConnect
from iotc_apply.keystore import KeyStore, common_name, device_config
from iotc_apply.manifest import load
from iotc_apply.model import (
    DesiredDevice,
    DesiredFirmware,
    DesiredTemplate,
)


def seed(api: IoTConnect, manifests: Path, keys: KeyStore) -> None:
    """Create everything the manifests declare, exactly as declared."""
    loaded = load([str(manifests)])
    assert loaded.ok, [str(d) for d in loaded.diagnostics]
    desired = loaded.desired
    me = api.session.identity()
    entities = {e.name: e.guid for e in api.entities.list()}
    root = api.entities.root().guid
    guids = {t.code: api.templates.create(t)
             for t in desired.of(DesiredTemplate)}
    for d in desired.of(DesiredDevice):
        pem = d.certificate.pem if d.certificate else keys.ensure(
            d.duid, common_name(d.duid, me.cpid, me.dedicated),
            device_config(d.duid, me.cpid, me.env, me.pf, me.dedicated)).certificate_pem
        guid = api.devices.create(guids[d.template], d.duid, d.display_name,
                                  entities[d.entity] if d.entity else root, pem)
        if not d.active:
            api.devices.set_active(guid, d.duid, False)
    for f in desired.of(DesiredFirmware):
        first = f.upgrades[0]
        fw, upgrade = api.firmware.create(guids[f.template], f.name, f.hardware, first.version,
                                          f.description, first.description)
        for u in f.upgrades:
            guid = upgrade if u is first else api.firmware.create_upgrade(fw, u.version,
                                                                          u.description)
            for file in u.files:
                api.files.upload(FIRMWARE_MODULE, guid, file.name, Path(file.path).read_bytes(),
                                 file.md5)
            if u.release:
                api.firmware.publish(guid)
