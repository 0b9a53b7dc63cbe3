"""HS256 JSON Web Tokens as the IoTConnect auth service issues them.

Hand-written (about 30 lines) rather than a JWT dependency: the emulator only ever signs and
checks its own HS256 tokens, and the claim layout must match the captured real tokens
exactly (`exp`, `iss`, `aud`, and a `user` object). Imports nothing from iotc_apply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: dict[str, Any], secret: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def verify(token: str, secret: bytes, now: float) -> dict[str, Any] | None:
    """The claims of a token this secret signed and that has not expired; else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header, payload, mac = parts
    expected = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        claims = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or float(claims.get("exp", 0)) <= now:
        return None
    return claims
