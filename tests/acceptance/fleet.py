"""The acceptance fleet: 2 templates, 5 devices and a DeviceSet of 5, one firmware with a
released and a draft upgrade and their files, all under a prefix unique to the run.

Version 1 creates it. Version 2 changes something of every kind in place, through every
call the client knows only from documentation (template rename, attribute and command
create/update/delete, device update and status, firmware and draft-upgrade updates).
Version 3 also moves one device to the other template (a replacement) and drops the
command version 2 added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Fleet:
    root: Path
    token: str
    parallelism: int = 10  # 1 while recording: vcrpy loses interactions recorded by threads

    @property
    def prefix(self) -> str:
        """Every DUID starts with it."""
        return f"acc{self.token}"

    @property
    def code_prefix(self) -> str:
        return f"a{self.token}"

    @property
    def templates(self) -> tuple[str, str]:
        return f"{self.code_prefix}a", f"{self.code_prefix}b"

    @property
    def firmware(self) -> str:
        return f"F{self.token.upper()}"

    def devices(self) -> list[str]:
        return [f"{self.prefix}-d{i:02d}" for i in range(1, 6)] + \
            [f"{self.prefix}-s{i:02d}" for i in range(1, 6)]

    def write(self, version: int) -> None:
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        for name in ("fw-1.0.0.bin", "fw-1.1.0.bin"):
            path = self.root / "files" / name
            if not path.exists():
                path.write_bytes(f"{self.token} {name}\n".encode() * 64)
        a, b = self.templates
        (self.root / "templates.yaml").write_text(_templates(a, b, version, self.token))
        (self.root / "devices.yaml").write_text(_devices(self.prefix, a, b, version))
        (self.root / "firmware.yaml").write_text(_firmware(self.firmware, a, version))


def _templates(a: str, b: str, version: int, token: str) -> str:
    """Names carry the run's token too: template names are unique in an account, so a
    leftover or a parallel run must never collide with this one."""
    v1 = version == 1
    attributes = ("    - {name: temperature, type: DECIMAL, unit: C}\n"
                  "    - {name: humidity, type: DECIMAL, unit: \"%\"}\n") if v1 else (
                  "    - {name: temperature, type: DECIMAL, unit: F}\n"
                  "    - {name: pressure, type: DECIMAL, unit: hPa}\n")
    commands = "    - {name: Reboot, command: reboot, requiredAck: true}\n" if v1 else (
               "    - {name: Reboot, command: reboot, requiredAck: false}\n"
               + ("    - {name: Blink, command: blink}\n" if version == 2 else ""))
    return (f"apiVersion: iotc/v1\nkind: Template\nmetadata: {{name: {a}}}\nspec:\n"
            f"  name: Acceptance sensor {token}{'' if v1 else ' v2'}\n"
            "  authType: self-signed\n"
            f"  attributes:\n{attributes}  commands:\n{commands}"
            f"---\napiVersion: iotc/v1\nkind: Template\nmetadata: {{name: {b}}}\nspec:\n"
            f"  name: Acceptance meter {token}\n  authType: self-signed\n  attributes:\n"
            "    - {name: level, type: INTEGER}\n")


def _devices(prefix: str, a: str, b: str, version: int) -> str:
    out = []
    for i in range(1, 6):
        template = b if version == 3 and i == 3 else a
        name = f"Acceptance device {i}" + (" renamed" if version > 1 and i == 1 else "")
        active = "false" if version > 1 and i == 2 else "true"
        out.append(f"apiVersion: iotc/v1\nkind: Device\nmetadata: {{name: {prefix}-d{i:02d}}}\n"
                   f"spec:\n  template: {template}\n  displayName: {name}\n"
                   f"  active: {active}\n")
    out.append(f"apiVersion: iotc/v1\nkind: DeviceSet\nmetadata: {{name: {prefix}-set}}\nspec:\n"
               f"  count: 5\n  start: 1\n  uniqueId: \"{prefix}-s{{index:02}}\"\n"
               f"  displayName: \"Acceptance meter {{index}}\"\n  template: {b}\n")
    return "---\n".join(out)


def _firmware(name: str, template: str, version: int) -> str:
    return (f"apiVersion: iotc/v1\nkind: Firmware\nmetadata: {{name: {name}}}\nspec:\n"
            f"  template: {template}\n  hardware: \"1.0\"\n"
            f"  description: Acceptance firmware{'' if version == 1 else ' (v2)'}\n"
            "  upgrades:\n"
            "    - version: 1.0.0\n      description: Released\n"
            "      files: [files/fw-1.0.0.bin]\n      release: true\n"
            f"    - version: 1.1.0\n      description: Draft{'' if version == 1 else ' v2'}\n"
            "      files: [files/fw-1.1.0.bin]\n")
