"""Rules across documents: duplicates, references, one firmware per template, glob overlap.

Takes everything the kind builders produced and assembles the desired state keyed by
address, reporting each violation at the node it is about and naming the other place
involved. May import: `diagnostics`, `model`.
"""

from __future__ import annotations

import difflib
import fnmatch

from ..diagnostics import Diagnostic, Position
from ..model import (
    Address,
    Desired,
    DesiredDevice,
    DesiredFirmware,
    DesiredProject,
    DesiredResource,
    DesiredRollout,
    DesiredTemplate,
    Kind,
)
from .kinds import Built
from .yamlsafe import Document

CERT_AUTH_TYPES = {"self-signed", "ca-signed", "ca-individual"}
MAX_CERT_DUID = 31


def assemble(built: Built) -> tuple[Desired, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    resources: dict[Address, DesiredResource] = {}
    origins: dict[Address, Position] = {}

    folded: dict[tuple[str, str], Address] = {}

    def claim(address: Address, resource: DesiredResource, where: Position, note: str = "") \
            -> bool:
        """One declaration per natural key, compared case-insensitively: the service stores
        `DEV-01` and `dev-01` as one object, so declaring both could never converge."""
        folded_key = (address.kind, address.name.lower())  # Kind is a str: no .value lookup
        first = folded.get(folded_key)
        if first is not None:
            same = "" if first == address else f" as {first} (names differ only in case)"
            diags.append(Diagnostic.error(where, f"{address}{note} is already declared"
                                                 f"{same} at {origins[first]}"))
            return False
        folded[folded_key] = address
        resources[address], origins[address] = resource, where
        return True

    templates: dict[str, DesiredTemplate | None] = dict.fromkeys(built.broken_templates)
    for template, where, _ in built.templates:
        if claim(template.address, template, where):
            templates[template.code] = template
    for firmware, where, template_where, versions in built.firmwares:
        _check_firmware(firmware, template_where, templates, resources, diags)
        if claim(firmware.address, firmware, where):
            for upgrade in firmware.upgrades:
                claim(upgrade.address, upgrade, versions[upgrade.version])
    for device, where, template_where in built.devices:
        if _check_device(device, where, template_where, templates, diags):
            note = f" (from DeviceSet {device.device_set})" if device.device_set else ""
            claim(device.address, device, where, note)
    project = _project(built, diags)
    rollouts = []
    for rollout, where, doc in built.rollouts:
        if claim(rollout.address, rollout, where):  # type: ignore[arg-type]
            del resources[rollout.address]  # a rollout makes no object: kept apart
            rollouts.append(rollout)
            _check_rollout(rollout, doc, resources, diags)
    # in Address order, by a key compared in C (Kind is a str)
    ordered = dict(sorted(resources.items(), key=lambda item: (item[0].kind, item[0].name)))
    kept = {a: origins[a] for a in ordered} | {r.address: origins[r.address] for r in rollouts}
    return Desired(ordered, kept, project, tuple(sorted(rollouts, key=lambda r: r.name))), \
        diags


def _check_rollout(rollout: DesiredRollout, doc: Document,
                   resources: dict[Address, DesiredResource], diags: list[Diagnostic]) -> None:
    """A rollout of a firmware the manifests declare names one of its upgrades (one only
    live is the plan's to find)."""
    firmware = resources.get(Address(Kind.FIRMWARE, rollout.firmware))
    if isinstance(firmware, DesiredFirmware) and \
            all(u.version != rollout.version for u in firmware.upgrades):
        versions = ", ".join(u.version for u in firmware.upgrades)
        diags.append(Diagnostic.error(doc.where(("spec", "upgrade", "version")),
                                      f"firmware {rollout.firmware} declares no upgrade "
                                      f"{rollout.version} (it declares {versions})"))


def _reference(name: str, templates: dict[str, DesiredTemplate | None], where: Position,
               diags: list[Diagnostic]) -> DesiredTemplate | None:
    """The referred template; None, with an error unless the template's own document
    failed (then that document's error is the one to fix)."""
    if name in templates:
        return templates[name]
    match = difflib.get_close_matches(name, [n for n, t in templates.items() if t], n=1,
                                      cutoff=0.6)
    hint = f" (did you mean '{match[0]}'?)" if match else ""
    diags.append(Diagnostic.error(where, f"template '{name}' is not declared{hint}"))
    return None


def _check_firmware(firmware: DesiredFirmware, where: Position,
                    templates: dict[str, DesiredTemplate | None],
                    resources: dict[Address, DesiredResource], diags: list[Diagnostic]) -> None:
    if _reference(firmware.template, templates, where, diags) is None:
        return
    for other in resources.values():
        if isinstance(other, DesiredFirmware) and other.template == firmware.template:
            diags.append(Diagnostic.error(
                where, f"template '{firmware.template}' already has firmware {other.name}; "
                       "IoTConnect allows one firmware per template"))
            return


def _check_device(device: DesiredDevice, where: Position, template_where: Position,
                  templates: dict[str, DesiredTemplate | None], diags: list[Diagnostic]) -> bool:
    template = _reference(device.template, templates, template_where, diags)
    if template is None:
        return False
    if template.auth_type in CERT_AUTH_TYPES and len(device.duid) > MAX_CERT_DUID:
        diags.append(Diagnostic.error(
            where, f"device '{device.duid}' is {len(device.duid)} characters; certificate "
                   f"devices allow at most {MAX_CERT_DUID}"))
        return False
    if device.certificate is not None and template.auth_type not in CERT_AUTH_TYPES:
        diags.append(Diagnostic.error(
            where, f"device '{device.duid}' has a certificate file but template "
                   f"'{template.code}' uses {template.auth_type} authentication"))
        return False
    return True


def _project(built: Built, diags: list[Diagnostic]) -> DesiredProject | None:
    if not built.projects:
        return None
    project, first, doc = built.projects[0]
    for _, where, _ in built.projects[1:]:
        diags.append(Diagnostic.error(where, f"only one Project is allowed; "
                                             f"'{project.name}' is declared at {first}"))
    for section in ("templates", "devices", "firmwares"):
        for i, guard in enumerate(getattr(project.protect, section)):
            for prune in getattr(project.prune, section):
                if globs_overlap(prune, guard):
                    diags.append(Diagnostic.error(
                        doc.where(("spec", "protect", section, i)),
                        f"protect glob '{guard}' overlaps prune glob '{prune}': a name "
                        "cannot be both pruned and protected"))
    return project


def globs_overlap(a: str, b: str) -> bool:
    """Whether two globs can match a common name (sound for the `*`/`?` globs people write).

    Equal globs, or one matching the other's literal text, overlap; otherwise their literal
    heads (before the first wildcard) and tails (after the last) must be compatible.
    """
    if a == b or fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a):
        return True
    wild = set("*?[")
    if not (wild & set(a)) or not (wild & set(b)):
        return False
    head_a, head_b = _head(a), _head(b)
    tail_a, tail_b = _head(a[::-1]), _head(b[::-1])
    heads = head_a.startswith(head_b) or head_b.startswith(head_a)
    tails = tail_a.startswith(tail_b) or tail_b.startswith(tail_a)
    return heads and tails


def _head(glob: str) -> str:
    for i, ch in enumerate(glob):
        if ch in "*?[]":
            return glob[:i]
    return glob
