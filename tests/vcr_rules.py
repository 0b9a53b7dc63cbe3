"""vcrpy rules shared by the pinned cassettes and the acceptance suite's `--record`.

Requests match on method, path, query and body; multipart bodies match on their fields, not
their random boundary. Secrets are scrubbed before anything is saved: Authorization,
Solution-key and cookie headers, every secret-named JSON field (passwords, tokens, keys),
the basic token, private keys and JWTs anywhere in text, and the loopback port.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import vcr
from vcr.request import Request

from iotc_apply.client.redact import REDACTED, redact, redact_text

SCRUBBED_HEADERS = ("Authorization", "Solution-key", "Cookie", "Set-Cookie")


def _multipart_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    match = re.search(r"boundary=([^;]+)", content_type)
    if not match:
        return [("raw", body.decode("latin-1"))]
    fields = []
    for part in body.split(b"--" + match.group(1).strip('"').encode())[1:-1]:
        head, _, content = part.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = re.search(rb'name="([^"]*)"(?:; filename="([^"]*)")?', head)
        name = disposition.group(1).decode() if disposition else "?"
        filename = disposition.group(2).decode() if disposition and disposition.group(2) else ""
        fields.append((f"{name}:{filename}", content.decode("latin-1")))
    return sorted(fields)


def normalized_body(request: Request) -> Any:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    content_type = request.headers.get("Content-Type", "") or ""
    if content_type.startswith("multipart/form-data"):
        return _multipart_fields(body, content_type)
    if not body:
        return None
    if "json" in content_type:
        return redact(json.loads(body))
    if "x-www-form-urlencoded" in content_type:
        return sorted(parse_qsl(body.decode()))
    return body


def body_fields(r1: Request, r2: Request) -> None:
    assert normalized_body(r1) == normalized_body(r2), "bodies differ"


LOOPBACK = re.compile(r"http://127\.0\.0\.1:\d+")
STABLE_ROOT = "http://127.0.0.1:9"  # the recording server's random port, made stable


def scrub_request(request: Request) -> Request:
    request.uri = redact_text(LOOPBACK.sub(STABLE_ROOT, request.uri))  # the skey is in a path
    for header in SCRUBBED_HEADERS:
        request.headers.pop(header, None)
    if "json" in (request.headers.get("Content-Type") or "") and request.body:
        request.body = json.dumps(redact(json.loads(request.body))).encode()
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    for header in SCRUBBED_HEADERS:
        response["headers"].pop(header, None)
    raw = LOOPBACK.sub(STABLE_ROOT, (response["body"].get("string") or b"").decode(
        "utf-8", "replace")).encode()
    response["body"]["string"] = raw
    try:
        body = json.loads(raw)
    except ValueError:
        return response
    if isinstance(body, dict) and str(body.get("message", "")).startswith("Basic token"):
        body["data"] = REDACTED
    response["body"]["string"] = redact_text(json.dumps(redact(body))).encode()
    return response


GUID = re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                  r"[0-9A-Fa-f]{12}\b")
PLACEHOLDER = re.compile(r"^00000000-0000-4000-8000-[0-9a-f]{12}$")


class Identifiers:
    """What identifies an account in a recording of a real one: its cpId, the login e-mail
    and every GUID. Each GUID becomes a stable placeholder for the run (the same GUID, the
    same placeholder, so the cassette still reads as one story); placeholders stay as they
    are. For `--record` of the acceptance suite, whose cassettes users attach to issues."""

    def __init__(self, *known: str) -> None:
        self.known = [k for k in known if k]
        self.guids: dict[str, str] = {}

    def _guid(self, found: re.Match[str]) -> str:
        value = found.group(0)
        if PLACEHOLDER.match(value):
            return value
        key = value.upper()
        if key not in self.guids:
            self.guids[key] = f"00000000-0000-4000-8000-{len(self.guids) + 1:012x}"
        return self.guids[key]

    def scrub(self, text: str) -> str:
        for value in self.known:
            text = re.sub(re.escape(value), "(account)", text, flags=re.IGNORECASE)
        return GUID.sub(self._guid, text)

    def request(self, request: Request) -> Request:
        request = scrub_request(request)
        request.uri = self.scrub(request.uri)
        if request.body:
            body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) \
                else request.body
            request.body = self.scrub(body).encode()
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        response = scrub_response(response)
        raw = (response["body"].get("string") or b"").decode("utf-8", "replace")
        response["body"]["string"] = self.scrub(raw).encode()
        return response


def recorder(library: Path, mode: str = "none",
             identifiers: Identifiers | None = None) -> vcr.VCR:
    rec = vcr.VCR(cassette_library_dir=str(library), record_mode=mode,
                  match_on=("method", "path", "query", "body_fields"),
                  before_record_request=identifiers.request if identifiers else scrub_request,
                  before_record_response=identifiers.response if identifiers
                  else scrub_response, decode_compressed_response=True)
    rec.register_matcher("body_fields", body_fields)
    return rec
