"""The API coverage table is complete, matches the README, and drives the client's message
for a call the service turns out not to have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iotc_apply.client import IoTConnect, coverage
from iotc_apply.client.errors import ABSENT, UnsupportedCall
from iotc_apply.emulator import EmulatorServer, Knobs

from .support import template

CLIENT = Path(__file__).resolve().parent.parent / "iotc_apply" / "client"
README = Path(__file__).resolve().parent.parent / "README.md"
CALL_SITE = re.compile(
    r'(?:session\.call|self\.call)\((SERVICE|"\w+"),\s*"(GET|POST|PUT|DELETE)",\s*f?"([^"]+)"'
    r'|session\.pages\((SERVICE|"\w+"),\s*f?"([^"]+)"'
    r'|_auth_call\("(GET|POST|PUT|DELETE)",\s*"([^"]+)"'
    r'|_one\(f?"([^"]+)"')
ONE = re.compile(r'session\.call\((SERVICE|"\w+"), "GET", path\)')


def _normal(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _call_sites() -> set[tuple[str, str, str]]:
    found = set()
    for file in CLIENT.glob("*.py"):
        text = file.read_text()
        default = re.search(r'^SERVICE = "(\w+)"', text, re.M)
        one = ONE.search(text)
        for m in CALL_SITE.finditer(text):
            if m.group(8) and one:  # a `_one(path)` helper: GET on its call's service
                service = default.group(1) if one.group(1) == "SERVICE" and default else \
                    one.group(1).strip('"')
                found.add(("GET", service, _normal(m.group(8))))
                continue
            if m.group(7):
                found.add((m.group(6), "auth", _normal(m.group(7))))
                continue
            service = m.group(1) or m.group(4)
            service = default.group(1) if service == "SERVICE" and default else \
                service.strip('"')
            method, path = (m.group(2), m.group(3)) if m.group(1) else ("GET", m.group(5))
            if path.startswith("/"):
                found.add((method, service, _normal(path)))
    return found


def test_every_call_the_client_makes_is_in_the_table() -> None:
    table = {(c.method, c.service, _normal(c.path)) for c in coverage.CALLS
             if c.service != "discovery"}
    sites = _call_sites()
    assert len(sites) > 35
    assert sites - table == set(), "calls without evidence in client/coverage.py"
    assert table - sites == set(), "table rows no client call makes"


def test_the_readme_shows_the_table() -> None:
    assert coverage.markdown_table() in README.read_text()


def test_a_documented_call_the_service_lacks_is_named_with_what_to_report(
        server: EmulatorServer, api: IoTConnect) -> None:
    made = api.templates.create(template("cov01", "cov01"))
    server.emulator.traffic.configure(Knobs(missing_routes=(
        "PUT /device-template/<guid>", "DELETE /Device/<guid>")))
    with pytest.raises(UnsupportedCall) as refused:
        api.templates.rename(made, "Renamed")
    message = str(refused.value)
    assert message.startswith("PUT /device-template/{guid} answered HTTP 404 as if the "
                              "service had no such call.")
    assert "vendor swagger (AE device swagger, NET)" in message and "IOTC_API_TRACE=1" in message
    # A call seen in the official client keeps its plain error: a 404 there means "absent".
    with pytest.raises(ABSENT):
        api.devices.delete("00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("body", ["json", "html"])
def test_a_404_of_a_documented_call_is_never_read_as_absent(
        server: EmulatorServer, api: IoTConnect, body: str) -> None:
    """A gateway may answer a missing route with a JSON 404 (issue 27): a call known only
    from a swagger is then unsupported, never "absent"; a delete of a template attribute
    (swagger only) is not taken for "already gone"."""
    made = api.templates.create(template("cov02", "cov02"))
    attribute = api.templates.attributes(made)[0]
    server.emulator.traffic.configure(Knobs(missing_route_body=body, missing_routes=(
        "DELETE /template-attribute/<guid>", "GET /device-template/datatype")))
    with pytest.raises(UnsupportedCall, match=r"^DELETE /template-attribute/\{guid\} "
                                              r"answered HTTP 404"):
        api.templates.delete_attribute(attribute.guid)
    with pytest.raises(UnsupportedCall, match=r"GET /device-template/datatype"):
        api.templates.data_types()
    assert [a.guid for a in api.templates.attributes(made)] == [attribute.guid]
