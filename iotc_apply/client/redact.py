"""Redaction of secrets from anything the client traces or records.

Used by the `IOTC_API_TRACE` tracer and by the cassette scrubbing in the tests, so there is
one definition of what a secret is: passwords, tokens (access, refresh, basic), solution
keys, Authorization headers, private keys wherever they appear in text, and the parts of a
URL that are credentials: its user-info, and the query of a signed URL (a download URL's
signature, a token in a query).
May import: nothing else of iotc_apply.
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
URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@?#'\"]*@)?"
                 r"(?P<rest>[^\s?#'\"]*)(?P<query>\?[^\s#'\"]*)?")


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
    """Private keys, JWTs, URL credentials and every remembered secret removed from free
    text."""
    text = PRIVATE_KEY.sub(REDACTED, text)
    if "://" in text:
        text = URL.sub(_url, text)
    for secret in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return JWT.sub(REDACTED, text)


def redact_url(url: str) -> str:
    """A URL as it may be shown: no user-info, no query string (a signed URL's signature
    is its credential)."""
    return URL.sub(_url, url)


# query keys of signed URLs: Azure SAS (sig, se, sv, sp, ...), S3 presigned (X-Amz-*), and
# any token, key or credential; a query holding one is redacted whole
SIGNED_QUERY = re.compile(r"(?:^|[?&])(?:sig|signature|se|sv|sp|sr|st|skoid|x-amz-[a-z-]+|"
                          r"[a-z_-]*(?:token|key|credential|secret|password)[a-z_-]*)=",
                          re.IGNORECASE)


def _url(found: re.Match[str]) -> str:
    userinfo = f"{REDACTED}@" if found["userinfo"] else ""
    query = found["query"] or ""
    if query and SIGNED_QUERY.search(query):
        query = f"?{REDACTED}"
    return f"{found['scheme']}{userinfo}{found['rest']}{query}"
