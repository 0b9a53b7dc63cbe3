"""The session: one account's calls, pages and downloads, over auth, retries and transport.

`ApiSession` is what every resource client holds, shared by every worker thread. It cuts
the way httpx does: `transport` sends one request (pool, proxies, timeouts, tracing),
`retrying` repeats it where that is safe and shares one throttle, `auth` knows the base URLs
and the token (discovery, login, refresh, the 401 flow), and the session itself calls an
endpoint and reads its envelope, pages through a listing, or streams a download.
May import: `model`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..model import Identity
from . import coverage
from .auth import TokenAuth
from .envelope import Envelope, parse
from .errors import StatusError, TransportError, UnsupportedCall
from .redact import redact_url, remember
from .retry import LOOPBACK, Retrying
from .settings import Settings, TokenStore
from .transport import DOWNLOAD, Transport

if TYPE_CHECKING:
    import requests  # the annotations only: importing it costs ~90 ms a command

__all__ = ["ApiSession", "Envelope", "guid_of"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
PAGES_AHEAD = 16
MAX_PAGES = 10_000  # a million items at 100 a page; beyond that a listing is broken


class ApiSession:
    """Authenticated, retrying access to every IoTConnect service of one account."""

    def __init__(self, settings: Settings, store: TokenStore | None = None,
                 http: requests.Session | None = None, pool_size: int = 32,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time,
                 trace_stream: IO[str] | None = None) -> None:
        self.settings = settings
        remember(settings.skey, settings.password)
        self.store = store if store is not None else TokenStore.for_settings(settings)
        self.transport = Transport(settings, http, pool_size, trace_stream)
        self.retrying = Retrying(self.transport, settings, pool_size, sleep)
        self.auth = TokenAuth(settings, self.store, self.retrying, clock)

    def login(self, username: str | None = None, password: str | None = None) -> Identity:
        return self.auth.login(username, password)

    def identity(self) -> Identity:
        return self.auth.identity()

    def call(self, service: str, method: str, path: str, *, params: dict[str, Any] | None = None,
             json_body: Any = None, data: dict[str, Any] | None = None,
             files: dict[str, Any] | None = None, ok: tuple[int, ...] = (200,)) -> Envelope:
        """One API call with auth, retries and envelope parsing; raises the tree's errors."""
        flow = self.auth.flow()
        headers = next(flow)
        url = self.auth.base_urls()[service] + path
        kwargs: dict[str, Any] = {"params": params, "json": json_body, "data": data,
                                  "files": files}
        while True:
            kwargs["headers"] = {"Accept": "application/json", **headers}
            resp = self.retrying.send(method, url, path, kwargs)
            if resp.status_code == 401:
                try:
                    headers = flow.send(resp)
                    continue
                except StopIteration:
                    pass
            try:
                return parse(resp, method, path, ok)
            except StatusError as exc:
                _raise_if_unsupported(service, method, path, resp)
                raise exc from None

    def pages(self, service: str, path: str, params: dict[str, Any] | None = None,
              page_size: int = 100, expect: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page by page, in order.

        Ends on an empty page (or a 204) or when the reported `count` is reached, never on a
        short page: the service may cap the page size silently. A listing that never ends
        (a page served again, or more than MAX_PAGES pages) is an error, not a hang.
        `expect` (how many items another listing says there are, e.g. a template's
        `deviceCount`) lets the pages it implies be fetched concurrently; it is only a
        hint: the listing still ends by the rules above, reading on one page at a time.
        """
        ahead = max(0, -(-(expect or 0) // page_size))  # pages the hint implies

        def get(number: int) -> Envelope:
            query = {**(params or {}), "pageNumber": number, "pageSize": page_size}
            return self.call(service, "GET", path, params=query, ok=(200, 204))

        seen, number, previous = 0, 1, None
        with ThreadPoolExecutor(max_workers=max(1, min(ahead, PAGES_AHEAD))) as pool:
            pending = {n: pool.submit(get, n) for n in range(1, ahead + 1)}
            try:
                while True:
                    envelope = (pending.pop(number) if number in pending
                                else pool.submit(get, number)).result()
                    items = envelope.items()
                    if not items:
                        return
                    if items == previous:
                        raise TransportError(f"page {number} repeats page {number - 1}; the "
                                             "listing would never end", "GET", path)
                    if number > MAX_PAGES:
                        raise TransportError(f"more than {MAX_PAGES:,} pages ({seen:,} items);"
                                             " stopped reading a listing that does not end",
                                             "GET", path)
                    yield from items
                    seen += len(items)
                    if envelope.count is not None and 0 <= envelope.count <= seen:
                        return
                    number, previous = number + 1, items
            finally:
                for future in pending.values():
                    future.cancel()

    def download(self, url: str, into: Path) -> tuple[Path, str]:
        """Stream a signed download URL into a new temp file in `into`: its path and MD5.

        The URL comes from the account, so every hop of a redirect passes the check the
        first URL does (https, or http to this machine) and stays on the first URL's host
        and scheme, at most MAX_REDIRECTS of them; the
        body goes to disk as it arrives and stops at `max_download_bytes`, so neither a
        redirect to another host nor a 2 GB body (once a MemoryError) gets anywhere. No
        Authorization header is sent: the URL is the credential.
        """
        limit = self.settings.max_download_bytes
        first = urllib.parse.urlsplit(url)
        for _ in range(MAX_REDIRECTS + 1):
            _check_download_url(url, first)
            resp = self.retrying.send("GET", url, DOWNLOAD, {"stream": True,
                                                             "allow_redirects": False})
            with resp:
                if resp.status_code in REDIRECTS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise TransportError(f"HTTP {resp.status_code} without a Location",
                                             "GET", DOWNLOAD)
                    url = urllib.parse.urljoin(url, location)
                    continue
                if resp.status_code != 200:
                    raise TransportError(f"HTTP {resp.status_code}", "GET", DOWNLOAD)
                return _stream_to_file(resp, into, limit)
        raise TransportError(f"more than {MAX_REDIRECTS} redirects", "GET", DOWNLOAD)


def guid_of(value: Any) -> str:
    """GUIDs arrive upper- or lower-case (quick create answers lower-case): one spelling."""
    return str(value or "").upper()


def _raise_if_unsupported(service: str, method: str, path: str,
                          resp: requests.Response) -> None:
    """A 404, 405 or 501 of a call known only from documentation becomes `UnsupportedCall`:
    no source shows what such a call's 404 means, and a gateway answers a missing route
    with a JSON 404 as readily as with a page, so it is never read as "absent"."""
    route_missing = resp.status_code in (404, 405, 501)
    call = coverage.find(method, service, path) if route_missing else None
    if call is not None and call.evidence != coverage.OFFICIAL:
        raise UnsupportedCall(coverage.unsupported_message(call, resp.status_code), method,
                              path)


def _check_download_url(url: str, first: urllib.parse.SplitResult) -> None:
    parts = urllib.parse.urlsplit(url)
    if not (parts.scheme == "https" and parts.hostname or
            parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise TransportError(f"not an https download URL: {redact_url(url)[:80]!r}", "GET",
                             DOWNLOAD)
    if (parts.scheme, parts.netloc.lower()) != (first.scheme, first.netloc.lower()):
        raise TransportError(f"the download redirects to another host or scheme "
                             f"({redact_url(url)[:80]!r}); not followed", "GET", DOWNLOAD)


def _stream_to_file(resp: requests.Response, into: Path, limit: int) -> tuple[Path, str]:
    """The body, chunk by chunk, into a 0600 temp file in `into`; removed on any failure."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # not '²'...
        raise TransportError(f"the file is {int(declared):,} bytes, more than the "
                             f"{limit:,} allowed (IOTC_MAX_DOWNLOAD_BYTES)", "GET", DOWNLOAD)
    digest = hashlib.md5(usedforsecurity=False)
    fd, name = tempfile.mkstemp(dir=into, prefix=".download.")
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in resp.iter_content(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise TransportError(f"the file is more than the {limit:,} bytes allowed "
                                         "(IOTC_MAX_DOWNLOAD_BYTES)", "GET", DOWNLOAD)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name), digest.hexdigest()
