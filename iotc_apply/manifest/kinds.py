"""From one schema-valid document to desired values, per kind.

Each builder reads a document that already passed its JSON Schema, resolves the files it
names (inside the manifest root), and returns desired values plus the problems it found, with
positions. Cross-document rules (references, duplicates) live in checks.py.
May import: `diagnostics`, `model`, `safefile`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..diagnostics import Diagnostic, Position
from ..model import (
    AUTH_TYPE_NAMES,
    CertificateFile,
    ChangeWindow,
    DesiredAttribute,
    DesiredCommand,
    DesiredDevice,
    DesiredFirmware,
    DesiredProject,
    DesiredRollout,
    DesiredTemplate,
    DesiredUpgrade,
    FirmwareFile,
    Globs,
    Guards,
    Wave,
)
from ..safefile import md5_and_size
from . import schema
from .files import ManifestFile, Refused, read_limited, resolve, shown_path
from .yamlsafe import Document

MAX_SIDE_FILE = 1024 * 1024


@dataclass
class Built:
    """What one document contributed: values with their positions, and problems."""

    templates: list[tuple[DesiredTemplate, Position, Document]] = field(default_factory=list)
    # positions, never the documents: a file's documents are dropped once it is built
    # (100,000 Device documents kept to the end took 612 MB); (device, where, its template's)
    devices: list[tuple[DesiredDevice, Position, Position]] = field(default_factory=list)
    # (firmware, where, its template's, each upgrade version's)
    firmwares: list[tuple[DesiredFirmware, Position, Position, dict[str, Position]]] = \
        field(default_factory=list)
    projects: list[tuple[DesiredProject, Position, Document]] = field(default_factory=list)
    rollouts: list[tuple[DesiredRollout, Position, Document]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # names of Template documents that failed: references to them get no second error
    broken_templates: set[str] = field(default_factory=set)

    def extend(self, other: Built) -> None:
        """Add what later files contributed (every field: a new one cannot be forgotten)."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, set):
                mine |= getattr(other, f.name)
            else:
                mine += getattr(other, f.name)


Builder = Callable[[Document, ManifestFile, Built], None]
# in the schema's enum, but shown by no public API source (the bundled emulator refuses them)
UNCONFIRMED_TYPES = frozenset({"LONG", "BIT", "DATE", "DATETIME", "TIME", "LATLONG"})


def _file(doc: Document, mf: ManifestFile, out: Built, path: tuple[Any, ...],
          ref: str) -> Any:
    """Resolve a named file; on refusal record a diagnostic and return None."""
    try:
        return resolve(ref, mf)
    except Refused as exc:
        out.diagnostics.append(Diagnostic.error(doc.where(path), f"'{ref}' {exc}"))
    except OSError as exc:
        out.diagnostics.append(Diagnostic.error(doc.where(path), f"'{ref}': {exc.strerror}"))
    return None


# -- Template -------------------------------------------------------------------------------------


def build_template(doc: Document, mf: ManifestFile, out: Built) -> None:
    spec = dict(doc.value["spec"])
    if "source" in spec:
        base = _template_source(doc, mf, out, spec["source"])
        if base is None:
            return
        spec = {**base, **{k: v for k, v in spec.items() if k != "source"}}
    missing = [f for f in ("name", "authType", "attributes") if f not in spec]
    if missing:
        out.diagnostics.append(Diagnostic.error(
            doc.where(("spec",)), f"spec: missing required field '{missing[0]}' (or give "
                                  "'source:', an exported template JSON)"))
        return
    if not spec["attributes"]:
        out.diagnostics.append(Diagnostic.error(
            doc.where(("spec", "attributes")),
            "spec.attributes: a template needs at least one attribute (devices cannot be "
            "created on a template without attributes)"))
        return
    code = doc.value["metadata"]["name"]
    for index, attribute in enumerate(spec["attributes"]):
        if str(attribute["type"]).upper() in UNCONFIRMED_TYPES:
            where = ("spec", "attributes", index, "type") if "source" not in doc.value["spec"] \
                else ("spec", "source")
            out.diagnostics.append(Diagnostic.warning(doc.where(where), (
                f"attribute '{attribute['name']}': data type {str(attribute['type']).upper()} "
                "is not confirmed by any public source; plan checks that the account offers "
                "it")))
    props = spec.get("properties") or {}
    template = DesiredTemplate(
        code=code, name=spec["name"], auth_type=spec["authType"],
        message_version=str(spec.get("messageVersion", "2.1")),
        attributes=tuple(DesiredAttribute(a["name"], a["type"].upper(), a.get("unit") or None,
                                          a.get("description") or None,
                                          tuple(a.get("aggregateTypes") or ()))
                         for a in spec["attributes"]),
        commands=tuple(DesiredCommand(c["name"], c["command"], bool(c.get("requiredParam")),
                                      bool(c.get("requiredAck")), bool(c.get("ota")))
                       for c in spec.get("commands") or ()),
        description=props.get("description") or None,
        data_frequency=int(props.get("dataFrequency", 60)),
        file_support=bool(props.get("fileSupport", False)))
    _unique(doc, out, [a.name.lower() for a in template.attributes], ("spec", "attributes"),
            "attribute")
    _unique(doc, out, [c.command for c in template.commands], ("spec", "commands"), "command")
    out.templates.append((template, doc.where(("metadata", "name")), doc))


def _template_source(doc: Document, mf: ManifestFile, out: Built, ref: str) -> Any:
    """An exported IoTConnect template JSON, in the spec's own vocabulary."""
    path = _file(doc, mf, out, ("spec", "source"), ref)
    if path is None:
        return None
    try:
        raw = json.loads(read_limited(path, MAX_SIDE_FILE))
    except Refused as exc:
        out.diagnostics.append(Diagnostic.error(doc.where(("spec", "source")), f"'{ref}' {exc}"))
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        out.diagnostics.append(Diagnostic.error(doc.where(("spec", "source")),
                                                f"'{ref}' is not valid JSON: {exc}"))
        return None
    mapped = _from_export(raw) if isinstance(raw, dict) else None
    if mapped is None:
        out.diagnostics.append(Diagnostic.error(doc.where(("spec", "source")),
                                                f"'{ref}' is not an exported template JSON"))
        return None
    problems = schema.check(doc, "Template", mapped, ("spec",), note=f"in '{ref}': ")
    out.diagnostics += [Diagnostic.error(doc.where(("spec", "source")), p.message)
                        for p in problems]
    return None if problems else mapped


def _from_export(raw: dict[str, Any]) -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    if "name" in raw:
        spec["name"] = raw["name"]
    if "authType" in raw:
        spec["authType"] = AUTH_TYPE_NAMES.get(_int(raw["authType"]), str(raw["authType"]))
    if raw.get("messageVersion") is not None:
        spec["messageVersion"] = str(raw["messageVersion"])
    if isinstance(raw.get("attributes"), list):
        spec["attributes"] = [
            {k: v for k, v in (("name", a.get("name")), ("type", a.get("type")),
                               ("unit", a.get("unit") or None),
                               ("description", a.get("description") or None),
                               ("aggregateTypes", a.get("aggregateTypes") or None))
             if v is not None} for a in raw["attributes"] if isinstance(a, dict)]
    if isinstance(raw.get("commands"), list):
        spec["commands"] = [
            {"name": c.get("name"), "command": c.get("command"),
             "requiredParam": bool(c.get("requiredParam")),
             "requiredAck": bool(c.get("requiredAck")), "ota": bool(c.get("isOTACommand"))}
            for c in raw["commands"] if isinstance(c, dict)]
    props = raw.get("properties")
    if isinstance(props, dict):
        spec["properties"] = {k: v for k, v in (
            ("description", props.get("description") or None),
            ("dataFrequency", _int(props.get("dataFrequency"))),
            ("fileSupport", props.get("fileSupport"))) if v is not None}
    return spec or None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _unique(doc: Document, out: Built, names: list[str], path: tuple[Any, ...],
            what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            out.diagnostics.append(Diagnostic.error(doc.where((*path, i)),
                                                    f"{what} '{name}' is declared twice"))
        seen.add(name)


# -- Device and DeviceSet -------------------------------------------------------------------------


def build_device(doc: Document, mf: ManifestFile, out: Built) -> None:
    duid = doc.value["metadata"]["name"]
    spec = doc.value["spec"]
    certificate = None
    if isinstance(spec.get("certificate"), dict):
        certificate = _certificate(doc, mf, out, spec["certificate"]["file"])
        if certificate is None:
            return
    device = DesiredDevice(duid=duid, template=spec["template"],
                           display_name=spec.get("displayName", duid),
                           entity=spec.get("entity"), active=spec.get("active", True),
                           certificate=certificate,
                           external=spec.get("certificate") == "external")
    out.devices.append((device, doc.where(("metadata", "name")),
                        doc.where(("spec", "template"))))


def _certificate(doc: Document, mf: ManifestFile, out: Built, ref: str) -> Any:
    where = ("spec", "certificate", "file")
    path = _file(doc, mf, out, where, ref)
    if path is None:
        return None
    from cryptography import x509  # only manifests that name a certificate need it

    try:
        pem = read_limited(path, MAX_SIDE_FILE).decode("ascii")
        x509.load_pem_x509_certificate(pem.encode())
    except Refused as exc:
        out.diagnostics.append(Diagnostic.error(doc.where(where), f"'{ref}' {exc}"))
        return None
    except (ValueError, UnicodeDecodeError):
        out.diagnostics.append(Diagnostic.error(doc.where(where),
                                                f"'{ref}' is not a PEM certificate"))
        return None
    if "PRIVATE KEY" in pem:
        out.diagnostics.append(Diagnostic.error(
            doc.where(where), f"'{ref}' contains a private key; give the certificate only"))
        return None
    return CertificateFile(ref, pem)


def build_device_set(doc: Document, mf: ManifestFile, out: Built) -> None:
    name = doc.value["metadata"]["name"]
    spec = doc.value["spec"]
    start = spec.get("start", 1)
    pattern, display = spec["uniqueId"], spec.get("displayName")
    where, template_where = doc.where(("metadata", "name")), doc.where(("spec", "template"))
    duid_of, shown_of = numbering(pattern), numbering(display) if display else None
    for index in range(start, start + spec["count"]):
        duid = duid_of(index)
        shown = shown_of(index) if shown_of else duid
        out.devices.append((DesiredDevice(duid=duid, template=spec["template"],
                                          display_name=shown, entity=spec.get("entity"),
                                          active=spec.get("active", True), device_set=name),
                            where, template_where))


INDEX = re.compile(r"\{index(?::0([1-9])d?)?\}")


def numbered(text: str, index: int) -> str:
    """`lt-{index:04}` -> `lt-0007`; only `{index}` and zero-padded widths are special."""
    return numbering(text)(index)


def numbering(text: str) -> Callable[[int], str]:
    """`numbered` for one pattern and many indexes: the pattern is read once (a DeviceSet
    of 100,000 devices spent a quarter of its load time in `re.sub`)."""
    parts = INDEX.split(text)  # literal, width, literal, width, ..., literal
    literals, widths = parts[0::2], [int(w or 0) for w in parts[1::2]]
    if not widths:
        return lambda _: text
    if len(widths) == 1:  # the common pattern (`lt-{index:04}`): one concatenation
        head, width, tail = literals[0], widths[0], literals[1]
        return lambda index: head + str(index).zfill(width) + tail

    def render(index: int) -> str:
        number = str(index)
        out = [literals[0]]
        for width, literal in zip(widths, literals[1:], strict=True):
            out += (number.zfill(width), literal)
        return "".join(out)

    return render


# -- Firmware and Project --------------------------------------------------------------------------


def build_firmware(doc: Document, mf: ManifestFile, out: Built) -> None:
    name = doc.value["metadata"]["name"]
    spec = doc.value["spec"]
    upgrades = []
    seen: set[str] = set()
    for i, up in enumerate(spec["upgrades"]):
        if up["version"] in seen:
            out.diagnostics.append(Diagnostic.error(
                doc.where(("spec", "upgrades", i, "version")),
                f"upgrade version '{up['version']}' is declared twice"))
            continue
        seen.add(up["version"])
        files = _firmware_files(doc, mf, out, i, up.get("files") or [])
        if files is None:
            continue
        if up.get("release") and not files:
            out.diagnostics.append(Diagnostic.error(
                doc.where(("spec", "upgrades", i, "release")),
                f"upgrade {up['version']}: a released upgrade needs at least one file"))
            continue
        upgrades.append(DesiredUpgrade(name, up["version"], up.get("description"), files,
                                       bool(up.get("release", False))))
    firmware = DesiredFirmware(name, spec["template"], spec["hardware"],
                               spec.get("description"), tuple(upgrades))
    versions = {up["version"]: doc.where(("spec", "upgrades", i, "version"))
                for i, up in reversed(list(enumerate(spec["upgrades"])))}  # first one wins
    out.firmwares.append((firmware, doc.where(("metadata", "name")),
                          doc.where(("spec", "template")), versions))


def _firmware_files(doc: Document, mf: ManifestFile, out: Built, index: int,
                    refs: list[str]) -> tuple[FirmwareFile, ...] | None:
    files, names, ok = [], set(), True
    for j, ref in enumerate(refs):
        where = ("spec", "upgrades", index, "files", j)
        path = _file(doc, mf, out, where, ref)
        if path is None:
            ok = False
            continue
        if path.name in names:
            out.diagnostics.append(Diagnostic.error(
                doc.where(where), f"two files of one upgrade are named '{path.name}'"))
            ok = False
            continue
        names.add(path.name)
        md5, size = md5_and_size(path)
        files.append(FirmwareFile(path.name, shown_path(path), md5, size))
    return tuple(files) if ok else None


def build_project(doc: Document, mf: ManifestFile, out: Built) -> None:
    spec = doc.value["spec"]

    def globs(section: str) -> Globs:
        part = spec.get(section) or {}
        return Globs(tuple(part.get("templates", ())), tuple(part.get("devices", ())),
                     tuple(part.get("firmwares", ())))

    given = spec.get("guards") or {}
    cap = given.get("maxDeletes")
    window = given.get("onlineWindow")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    guards = Guards(max_deletes=cap if isinstance(cap, int) else None,
                    max_deletes_percent=int(cap[:-1]) if isinstance(cap, str) else None,
                    online_window=int(window[:-1]) * units[window[-1]] if window else 86400.0,
                    allow_online=tuple(given.get("allowOnline", ())),
                    removal=given.get("removal", "delete"))
    windows = tuple(w for i, item in enumerate(spec.get("windows") or ())
                    if (w := _window(item, doc, ("spec", "windows", i), out)) is not None)
    project = DesiredProject(doc.value["metadata"]["name"], globs("prune"), globs("protect"),
                             tuple((spec.get("keys") or {}).get("recipients", ())),
                             globs("ignore"), guards, windows)
    out.projects.append((project, doc.where(("metadata", "name")), doc))


WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _window(item: dict[str, Any], doc: Document, path: tuple[Any, ...],
            out: Built) -> ChangeWindow | None:
    """One change window; its time zone must be one this machine knows (IANA names:
    a misspelt zone would silently shift the window by hours)."""
    zone = item.get("timeZone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        out.diagnostics.append(Diagnostic.error(
            doc.where((*path, "timeZone")), f"spec.windows[{path[-1]}].timeZone: unknown "
            f"time zone '{zone}' (an IANA name such as Europe/Berlin or America/Chicago)"))
        return None
    days: set[int] = set()
    for spelled in item.get("days") or ("mon-sun",):
        first, _, last = spelled.partition("-")
        a, b = WEEK.index(first), WEEK.index(last or first)
        days.update(d % 7 for d in range(a, b + 1 if b >= a else b + 8))
    start = tuple(int(x) for x in item["start"].split(":"))
    end = tuple(int(x) for x in item["end"].split(":"))
    minutes = (end[0] * 60 + end[1] - start[0] * 60 - start[1]) % 1440 or 1440
    return ChangeWindow(frozenset(days), (start[0], start[1]), minutes, zone)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def build_rollout(doc: Document, mf: ManifestFile, out: Built) -> None:
    """A Rollout: its waves (cumulative; the last must reach every target, and a wave never
    reaches fewer devices than the one before), gate and abort. Whether the upgrade exists
    and is released is the plan's to say (it may be live only)."""
    spec = doc.value["spec"]
    waves = tuple(Wave(percent=int(w[:-1])) if isinstance(w, str) else Wave(count=w)
                  for w in spec["waves"])
    where = doc.where(("spec", "waves"))
    if waves[-1].percent != 100:
        out.diagnostics.append(Diagnostic.error(
            doc.where(("spec", "waves", len(waves) - 1)), f"the last wave is {waves[-1]}; it "
            "must be 100% so the rollout reaches every target"))
        return
    for kind in ("count", "percent"):
        sizes = [getattr(w, kind) for w in waves if getattr(w, kind) is not None]
        if sizes != sorted(sizes):
            out.diagnostics.append(Diagnostic.error(where, "waves are cumulative: each "
                                                           "reaches at least as many devices "
                                                           "as the one before"))
            return
    gate, targets = spec.get("gate") or {}, spec["targets"]
    soak = gate.get("soak", "0s")
    rollout = DesiredRollout(
        doc.value["metadata"]["name"], spec["upgrade"]["firmware"],
        str(spec["upgrade"]["version"]), waves, targets.get("template"),
        targets.get("entity"), tuple(targets.get("devices", ())),
        gate_success=int(gate.get("success", "100%")[:-1]),
        gate_max_failed=gate.get("maxFailed"), soak=float(int(soak[:-1]) * UNITS[soak[-1]]),
        abort_failed=int((spec.get("abort") or {})["failed"][:-1])
        if (spec.get("abort") or {}).get("failed") else None,
        paused=bool(spec.get("paused", False)),
        windows=tuple(w for i, item in enumerate(spec.get("windows") or ())
                      if (w := _window(item, doc, ("spec", "windows", i), out)) is not None))
    out.rollouts.append((rollout, doc.where(("metadata", "name")), doc))


BUILDERS: dict[str, Builder] = {"Template": build_template, "Device": build_device,
                                "DeviceSet": build_device_set, "Firmware": build_firmware,
                                "Project": build_project, "Rollout": build_rollout}
