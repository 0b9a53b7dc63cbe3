"""`iotc export`: manifests for what the account holds, such that a plan of them is empty.

Pure: from a Snapshot (read with list endpoints, like a plan) to manifest documents; the CLI
fetches the snapshot and the upgrade files. The contract is the round trip (export, then
`validate` and `plan` give 0 errors and 0 changes), so every value is written the way the
planner's views read it back: the template's auth type by name, the root entity left out,
upgrades in the order the service lists them (the first is the firmware's own).

Numbered runs of devices become one `DeviceSet`: the same DUID prefix and suffix around a
consecutive run of numbers that one `{index}` width renders, the same template, entity and
`active`, and display names one `{index}` pattern renders (or equal to the DUIDs). Shorter
runs than MIN_RUN stay `Device` documents. Devices whose key is not in the key store are
written with `certificate: external`: the device holds its own key, and the plan refuses
any change that would re-create it. Imports `model` and `names`, and from the manifest
package the DeviceSet numbering itself, so a set is only written if the loader expands it
back.

Live names are untrusted (`names.py`): an object whose name (or whose template's code, or
one of whose upgrade versions or file names) breaks the manifest rule for its kind is
skipped with a warning naming it, never written, so no name becomes a path outside OUT;
every string written has `${` escaped. A file the service gives no MD5 for is marked
unverified in the manifest that lists it.
May import: `manifest` (the DeviceSet numbering itself, so a set is only written if the
loader expands it back), `model`, `names`.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from . import names
from .manifest.kinds import numbered
from .model import AUTH_TYPE_CODES, AUTH_TYPE_NAMES, LiveDevice, LiveFile, LiveFirmware, Snapshot

MIN_RUN = 3
NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")
NO_PATTERN = "\0"  # a display name no `{index}` pattern renders: the run ends with it
SELF_SIGNED = AUTH_TYPE_CODES["self-signed"]  # the auth type whose devices get generated keys


@dataclass(frozen=True)
class FileToFetch:
    """An upgrade file the export needs: where to write it and what its MD5 must be."""

    path: str  # relative to the output folder
    file: LiveFile


@dataclass(frozen=True)
class Export:
    files: dict[str, str]  # manifest path (relative) -> YAML text
    fetch: tuple[FileToFetch, ...]
    counts: dict[str, int]
    skipped: tuple[str, ...] = ()  # `address: why`, one per object not written


def export(snap: Snapshot, keys: Iterable[str], match: tuple[str, ...], header: str) -> Export:
    """Manifest files for the live objects whose address matches a glob (all without any),
    plus the templates they need."""
    kept = frozenset(keys)
    skipped: list[str] = []
    devices = [d for d in snap.devices.values() if _matches(f"device/{d.duid}", match)]
    firmwares = [f for f in snap.firmwares.values() if not f.deprecated
                 and _matches(f"firmware/{f.name}", match)]
    codes = {c for c in snap.templates if _matches(f"template/{c}", match)}
    codes |= {snap.template_code(d.template_guid) or "" for d in devices}
    codes |= {_firmware_template(snap, f) for f in firmwares}
    codes.discard("")
    for code in sorted(c for c in codes if not names.valid("template", c)):
        skipped.append(f"template/{code}: skipped, with its devices and firmware: its code "
                       "is not a valid template name")
    codes = {c for c in codes if names.valid("template", c)}
    devices = _named(devices, lambda d: (f"device/{d.duid}", _device_problem(snap, d, codes)),
                     skipped)
    firmwares = _named(firmwares, lambda f: (f"firmware/{f.name}",
                                             _firmware_problem(snap, f, codes)), skipped)
    out: dict[str, str] = {}
    # always written, even empty: an export of an empty account (or of a --match that takes
    # nothing) is still a manifest folder that validates and plans clean
    out["templates.yaml"] = _render(header, [_template(snap, c) for c in sorted(codes)])
    by_template: dict[str, list[LiveDevice]] = defaultdict(list)
    for device in devices:
        by_template[snap.template_code(device.template_guid) or ""].append(device)
    sets = singles = 0
    for code, group in sorted(by_template.items()):
        docs = _devices(snap, code, group, kept)
        sets += sum(1 for d in docs if d["kind"] == "DeviceSet")
        singles += sum(1 for d in docs if d["kind"] == "Device")
        out[f"devices-{code}.yaml"] = _render(header, docs)
    fetch: list[FileToFetch] = []
    if firmwares:
        docs = [_firmware(snap, f, fetch) for f in sorted(firmwares, key=lambda f: f.name)]
        out["firmware.yaml"] = _render(header, docs)
        unverified = [f.path for f in fetch if not f.file.tag]
        if unverified:
            out["firmware.yaml"] = "".join(
                f"# {path}: the service gave no MD5 for this file; its content is "
                "unverified\n" for path in unverified) + out["firmware.yaml"]
    left_out = _left_out(snap, codes, devices) if match else []
    if left_out:
        out["project.yaml"] = _render(
            header + "\nA partial export (--match): the devices of these templates it left "
            "out are\nlisted under ignore, so a plan leaves them alone; delete a name to see "
            "it again.",
            [_doc("Project", "exported", {"ignore": {"devices": left_out}})])
    counts = {"templates": len(codes), "devices": len(devices), "device_sets": sets,
              "device_documents": singles, "firmware": len(firmwares), "files": len(fetch)}
    return Export(out, tuple(fetch), counts, tuple(skipped))


def _firmware_template(snap: Snapshot, fw: LiveFirmware) -> str:
    return fw.template_code or snap.template_code(fw.template_guid) or ""


def _named(items: list[Any], check: Callable[[Any], tuple[str, str | None]],
           skipped: list[str]) -> list[Any]:
    """The items whose names may be written; a warning for each of the others."""
    kept = []
    for item in items:
        address, problem = check(item)
        if problem:
            skipped.append(f"{address}: skipped: {problem}")
        else:
            kept.append(item)
    return kept


def _device_problem(snap: Snapshot, device: LiveDevice, codes: set[str]) -> str | None:
    if not names.valid("device", device.duid):
        return "its unique ID is not a valid device name"
    if (snap.template_code(device.template_guid) or "") not in codes:
        return "its template is not exported"
    return None


def _firmware_problem(snap: Snapshot, fw: LiveFirmware, codes: set[str]) -> str | None:
    if not names.valid("firmware", fw.name):
        return "its name is not a valid firmware name"
    if _firmware_template(snap, fw) not in codes:
        return "its template is not exported"
    for u in fw.upgrades or ():
        if not names.valid("version", u.version):
            return f"upgrade version {u.version!r} is not a valid version"
        for f in snap.files.get(u.guid, u.files):
            if not names.valid("file", f.name):
                return f"upgrade {u.version}: file name {f.name!r} is not a valid file name"
    return None


def _left_out(snap: Snapshot, codes: set[str], devices: list[LiveDevice]) -> list[str]:
    """Live devices of the exported templates that the export did not write (not matched,
    or skipped for their name), which a plan of the export would otherwise list as `?`."""
    written = {d.duid for d in devices}
    return sorted(d.duid for d in snap.devices.values()
                  if snap.template_code(d.template_guid) in codes and d.duid not in written
                  and names.valid("device", d.duid))


def _matches(address: str, match: tuple[str, ...]) -> bool:
    """--match globs compare without case, as the service compares names."""
    return not match or any(fnmatch.fnmatchcase(address.casefold(), g.casefold())
                            for g in match)


def _render(header: str, docs: list[dict[str, object]]) -> str:
    """The documents as YAML, every `${` in their strings escaped (`names.escaped`)."""
    body = yaml.safe_dump_all(names.escaped(docs), sort_keys=False, allow_unicode=True,
                              width=100, explicit_start=True) if docs else ""
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def _template(snap: Snapshot, code: str) -> dict[str, object]:
    t = snap.templates[code]
    attributes = []
    for a in snap.attributes.get(code, ()):
        attr: dict[str, object] = {"name": a.name, "type": a.data_type.upper()}
        if a.unit:
            attr["unit"] = a.unit
        if a.description:
            attr["description"] = a.description
        if a.aggregate_types:
            attr["aggregateTypes"] = sorted(a.aggregate_types)
        attributes.append(attr)
    spec: dict[str, object] = {
        "name": t.name, "authType": AUTH_TYPE_NAMES.get(t.auth_type, str(t.auth_type)),
        "messageVersion": t.message_version, "attributes": attributes}
    commands = [{"name": c.name, "command": c.command, "requiredParam": c.required_param,
                 "requiredAck": c.required_ack, "ota": c.ota} for c in t.commands or ()]
    if commands:
        spec["commands"] = commands
    return _doc("Template", code, spec)


def _doc(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "iotc/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


# -- devices ------------------------------------------------------------------------------------


def _devices(snap: Snapshot, code: str, devices: list[LiveDevice],
             kept: frozenset[str]) -> list[dict[str, object]]:
    root = snap.entity_by_name(None)
    root_name = root.name if root else None
    entity = {d.duid: None if d.entity_name in (None, root_name) else d.entity_name
              for d in devices}
    groups: dict[tuple[object, ...], list[tuple[int, LiveDevice]]] = defaultdict(list)
    alone: list[LiveDevice] = []
    generating = {c for c, t in snap.templates.items() if t.auth_type == SELF_SIGNED}
    external = {d.duid for d in devices if code in generating and d.duid not in kept}
    for d in devices:
        found = NUMBERED.match(d.duid)
        if found is None or d.duid in external:  # a set cannot say `certificate: external`
            alone.append(d)
            continue
        key = (found.group(1), found.group(3), entity[d.duid], d.active)
        groups[key].append((int(found.group(2)), d))
    docs: list[tuple[str, dict[str, object]]] = []
    taken: set[str] = set()
    for (prefix, suffix, ent, active), members in groups.items():
        for run in _runs(sorted(members, key=lambda m: m[0]), str(prefix), str(suffix)):
            if len(run.members) < MIN_RUN:
                alone += [d for _, d in run.members]
                continue
            docs.append((run.members[0][1].duid,
                         _device_set(run, str(prefix), code, ent, bool(active), taken)))
    for d in alone:
        spec: dict[str, object] = {"template": code}
        if d.display_name != d.duid:
            spec["displayName"] = d.display_name
        if entity[d.duid]:
            spec["entity"] = entity[d.duid]
        if not d.active:
            spec["active"] = False
        if d.duid in external:
            spec["certificate"] = "external"
        docs.append((d.duid, _doc("Device", d.duid, spec)))
    return [doc for _, doc in sorted(docs, key=lambda item: item[0])]


@dataclass
class _Run:
    members: list[tuple[int, LiveDevice]]
    duid_pattern: str
    display_pattern: str | None  # None: display names equal the DUIDs


def _runs(members: list[tuple[int, LiveDevice]], prefix: str, suffix: str) -> list[_Run]:
    """Split numbered devices into runs one DeviceSet can describe."""
    runs: list[_Run] = []
    for number, device in members:
        digits = NUMBERED.match(device.duid).group(2)  # type: ignore[union-attr]
        last = runs[-1] if runs else None
        if last is not None and number == last.members[-1][0] + 1 and \
                _renders(last.duid_pattern, number, device.duid) and \
                _display_fits(last.display_pattern, number, device):
            last.members.append((number, device))
            continue
        width = len(digits) if digits.startswith("0") else 0
        if width > 9:
            runs.append(_Run([(number, device)], "", None))  # no `{index}` width renders it
            continue
        pattern = f"{prefix}{_index(width)}{suffix}"
        runs.append(_Run([(number, device)], pattern, _display_pattern(device, number)))
    return runs


def _index(width: int) -> str:
    return f"{{index:0{width}}}" if width else "{index}"


def _renders(pattern: str, number: int, text: str) -> bool:
    """Whether the DeviceSet pattern renders `text` for `number`, as the loader would."""
    return bool(pattern) and numbered(pattern, number) == text


def _display_pattern(device: LiveDevice, number: int) -> str | None:
    """`Sensor {index}` from `Sensor 7`; None when the display name is the DUID."""
    if device.display_name == device.duid:
        return None
    name = device.display_name
    for width in range(9, -1, -1):
        shown = str(number).zfill(width) if width else str(number)
        at = name.rfind(shown)
        if at >= 0 and (width == 0 or shown.startswith("0")):
            return name[:at] + _index(width) + name[at + len(shown):]
    return NO_PATTERN


def _display_fits(pattern: str | None, number: int, device: LiveDevice) -> bool:
    if pattern == NO_PATTERN:
        return False
    if pattern is None:
        return device.display_name == device.duid
    return _renders(pattern, number, device.display_name)


def _device_set(run: _Run, prefix: str, code: str, entity: object, active: bool,
                taken: set[str]) -> dict[str, object]:
    first, last = run.members[0], run.members[-1]
    base = re.sub(r"[^A-Za-z0-9_.-]", "", prefix).strip("-_.") or "set"
    name = f"{base}-{first[0]}-{last[0]}"
    while name in taken:
        name += "x"
    taken.add(name)
    spec: dict[str, object] = {"count": len(run.members), "start": first[0],
                               "uniqueId": run.duid_pattern}
    if run.display_pattern is not None:
        spec["displayName"] = run.display_pattern
    spec["template"] = code
    if entity:
        spec["entity"] = entity
    if not active:
        spec["active"] = False
    return _doc("DeviceSet", name[:63], spec)


# -- firmware -----------------------------------------------------------------------------------


def _firmware(snap: Snapshot, fw: LiveFirmware, fetch: list[FileToFetch]) -> dict[str, object]:
    upgrades = []
    for u in fw.upgrades or ():
        files = []
        for f in snap.files.get(u.guid, u.files):
            path = f"files/{fw.name}/{u.version}/{f.name}"
            fetch.append(FileToFetch(path, f))
            files.append(path)
        entry: dict[str, object] = {"version": u.version}
        if u.description:
            entry["description"] = u.description
        if files:
            entry["files"] = files
        if not u.draft:
            entry["release"] = True
        upgrades.append(entry)
    spec: dict[str, object] = {
        "template": fw.template_code or snap.template_code(fw.template_guid) or "",
        "hardware": fw.hardware}
    if fw.description:
        spec["description"] = fw.description
    spec["upgrades"] = upgrades
    return _doc("Firmware", fw.name, spec)
