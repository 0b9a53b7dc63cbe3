"""Every endpoint the emulator serves has a rule, and every rule names its source.

A rule is a public method of a service's rules class whose docstring names its endpoint as
`` `METHOD /path` ``. Its docstring must say where the behaviour comes from: `Source:` (the
official client's file and line, a swagger path, a capture) or `ASSUMPTION:` with the reason.
"""

from __future__ import annotations

import inspect
import re

from iotc_apply.emulator import accounts, auth, create_app, devices, files, firmware, templates
from iotc_apply.emulator.routes import SERVICES

RULE_CLASSES = (auth.Auth, accounts.Accounts, templates.Templates, devices.Devices,
                firmware.Firmware, files.Files)
ENDPOINT = re.compile(r"`(GET|POST|PUT|DELETE) (/[^`\s]*)`")


def _shape(path: str) -> str:
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _rules() -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for cls in RULE_CLASSES:
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            doc = inspect.getdoc(fn) or ""
            for method, path in ENDPOINT.findall(doc):
                found[(method, _shape(path))] = f"{cls.__name__}.{name}"
    return found


def test_every_rule_names_its_source() -> None:
    unsourced = []
    for cls in RULE_CLASSES:
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            doc = inspect.getdoc(fn) or ""
            if ENDPOINT.search(doc) and "Source:" not in doc and "ASSUMPTION:" not in doc:
                unsourced.append(f"{cls.__name__}.{name}")
    assert unsourced == []


def test_every_served_endpoint_has_a_rule() -> None:
    app = create_app()
    rules = _rules()
    served = set()
    for rule in app.url_map.iter_rules():
        service = rule.rule.split("/")[1]
        if service not in SERVICES:
            continue
        path = "/" + rule.rule.split("/", 4)[4]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((method, _shape(path)))
    assert len(served) > 50
    assert sorted(served - set(rules)) == []
