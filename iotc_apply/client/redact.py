"""Redaction of secrets from anything the client traces or records.

Used by the `IOTC_API_TRACE` tracer and by the cassette scrubbing in the tests, so there is
one definition of what a secret is: passwords, tokens (access, refresh, basic), solution
keys, Authorization headers, and private keys wherever they appear in text.
Imports nothing else from iotc_apply.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "(redacted)"
SECRET_KEYS = re.compile(
    r"^(password|access_token|refresh_token|refreshtoken|token|authorization|solution-?key|"
    r"skey|privatekey|private_key)$", re.IGNORECASE)
PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL)
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every secret replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and SECRET_KEYS.match(k) else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


_KNOWN: set[str] = set()


def remember(*secrets: str | None) -> None:
    """Values to remove from any text shown later (solution key, password, tokens): a
    secret may reach an error message by paths no rule foresaw, e.g. inside a URL that
    `requests` refuses, so every error printed passes through `redact_text`."""
    _KNOWN.update(s for s in secrets if s and len(s) >= 4)


def redact_text(text: str) -> str:
    """Private keys, JWTs and every remembered secret removed from free text."""
    text = PRIVATE_KEY.sub(REDACTED, text)
    for secret in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return JWT.sub(REDACTED, text)
