"""The service's answer envelope (`data`, `count`, `message`, `error[]`) and how a refusal
becomes an error of the tree: by status, never by wording. May import: nothing else of
iotc_apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import TransportError, status_error
from .redact import REDACTED, redact_text

if TYPE_CHECKING:
    import requests  # the annotations only: importing it costs ~90 ms a command

SAFE_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD"})


@dataclass(frozen=True)
class Envelope:
    """A parsed answer: `data`, `count` and `message` of the service's envelope."""

    status: int
    data: Any
    count: int | None
    message: str | None
    body: Any

    def items(self) -> list[dict[str, Any]]:
        """`data` as a list of objects (a 204 or a non-list `data` is empty)."""
        if isinstance(self.data, list):
            return [d for d in self.data if isinstance(d, dict)]
        return []

    def first(self) -> dict[str, Any] | None:
        items = self.items()
        return items[0] if items else None


def parse(resp: requests.Response, method: str, path: str, ok: tuple[int, ...]) -> Envelope:
    """The envelope of an expected answer; the tree's error for any other."""
    status = resp.status_code
    if 300 <= status < 400 and status not in ok:
        raise status_error(method, path, status, moved(resp), ())
    if status == 204 or (not resp.content and status in ok):
        return Envelope(status, [], 0, None, None)
    try:
        body = resp.json()
    except ValueError:
        snippet = " ".join(resp.text[:80].split())
        if status in ok:
            raise TransportError(f"HTTP {status} with a non-JSON body: {snippet!r}", method,
                                 path, ambiguous=method not in SAFE_METHODS) from None
        if status in (401, 403, 407) and "<" in resp.text[:200]:
            raise status_error(method, path, status, (
                f"an HTML page ({snippet!r}), not the service's JSON: a proxy or firewall "
                "between here and the service refused the request; check HTTPS_PROXY, "
                "NO_PROXY and the network's rules"), ()) from None
        raise status_error(method, path, status, f"non-JSON body: {snippet!r}", ()) \
            from None
    if status not in ok:
        message, codes = _error_details(body)
        raise status_error(method, path, status, message, codes)
    if not isinstance(body, dict):
        return Envelope(status, body, None, None, body)
    count = body.get("count")
    return Envelope(status, body.get("data"), count if isinstance(count, int) else None,
                    body.get("message"), body)


def moved(resp: requests.Response, hide: str | None = None) -> str:
    """What a redirect answer says, for an error: API calls never follow one (the bearer
    token would travel with it, and a POST would be sent again as a GET), so the user learns
    where the service points instead. The place is shown without its query, credentials or
    `hide` (the solution key in a discovery URL's path)."""
    where = str(resp.headers.get("Location") or "").strip()[:300]
    if hide:
        where = where.replace(hide, REDACTED)
    shown = redact_text(where) if where else "nowhere (no Location header)"
    return f"redirected to {shown}; API calls do not follow redirects"


def _joined(found: Any) -> str:
    return "; ".join(str(m) for m in found) if isinstance(found, list) else str(found)


def _error_details(body: Any) -> tuple[str, tuple[str, ...]]:
    """The message and codes of a refusal: the service's envelope (`message`, `error[]` with
    `param`), or ASP.NET's ProblemDetails (`title`, `errors{field: [messages]}`), which the
    framework answers for a 400 before the service's own code runs."""
    if not isinstance(body, dict):
        return "", ()
    errors = body.get("error")
    codes = tuple(str(e["param"]) for e in errors if isinstance(e, dict) and e.get("param")) \
        if isinstance(errors, list) else ()
    message = str(body.get("message") or "")
    problems = body.get("errors")
    if not message and (body.get("title") or isinstance(problems, dict)):
        details = [f"{field}: {_joined(found)}"
                   for field, found in (problems.items() if isinstance(problems, dict) else ())]
        message = "; ".join([str(body.get("title") or "invalid request"), *details])
        codes = codes or tuple(str(k) for k in (problems or {}))
    return message, codes
