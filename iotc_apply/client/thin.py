"""The thin path: JSON requests over kept-alive `http.client` connections, without
requests or urllib3 on top.

Every page of a 100,000-device plan and every device of an apply is one small JSON request.
requests spent ~0.5 ms of CPU on each beyond what urllib3 needs (preparing the request
through runtime-checked protocols, merging settings, cookie jars, hooks), and urllib3 another
~0.25 ms beyond `http.client` (pool keys, URL parsing, its header dict, its response object):
together most of the client's cost per call. This sends exactly what requests would (its
default headers, the same query encoding, the JSON body as requests encodes it), verifies
TLS the same way (certificate and host name, against REQUESTS_CA_BUNDLE or certifi's
bundle), decodes gzip and deflate as it does, and raises the exceptions requests raises, in
the shape urllib3 gives them (a connection never opened is a `NewConnectionError`), so the
retry layer and the error messages cannot tell the paths apart. Requests with files, forms
or a streamed body, and any request that goes through a proxy, stay on requests
(`Transport.send` decides). May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import select
import socket
import ssl
import threading
import urllib.parse
import zlib
from typing import Any

from .settings import Settings

# requests and urllib3 (~90 ms of imports) are imported only to raise their exceptions, or
# for what this path does not know how to do exactly as requests does

# what is decoded here (requests would also ask for br or zstd where their modules are
# installed, and this path could not read them)
ACCEPT_ENCODING = "gzip, deflate"


def thin_enough(kwargs: dict[str, Any]) -> bool:
    """A request the thin path sends as requests would: query, headers and JSON only."""
    return not (kwargs.get("files") or kwargs.get("data") or kwargs.get("stream")
                or kwargs.get("allow_redirects") or set(kwargs) - KNOWN)


KNOWN = frozenset({"params", "json", "data", "files", "headers"})


class Answer:
    """The parts of `requests.Response` the client reads."""

    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage,
                 content: bytes, url: str) -> None:
        self.status_code = status
        self.headers = headers  # case-insensitive `get`, as requests' are
        self.content = content
        self.url = url
        self.reason = reason

    @property
    def text(self) -> str:
        return self.content.decode(self._charset(), errors="replace")

    def _charset(self) -> str:
        kind = self.headers.get("Content-Type", "")
        for part in kind.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    def json(self) -> Any:
        """The body as JSON; raises `requests.JSONDecodeError` (a ValueError), as requests
        does."""
        try:
            return json.loads(self.content)
        except ValueError as exc:
            import requests

            raise requests.JSONDecodeError(str(exc), self.text[:100], 0) from None


class _Pool:
    """Idle kept-alive connections per origin, at most `size` of each kept (the rest are
    closed when given back, as urllib3's non-blocking pool does)."""

    def __init__(self, size: int, timeout: float, bundle: str | None) -> None:
        self.size = size
        self.timeout = timeout
        self.bundle = bundle
        self._context: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection:
        """A kept connection the peer has not closed meanwhile, else a new (unopened) one.
        One made from another class than `http.client`'s now is not reused: a recorder
        (vcrpy) swaps the class in and out, and must see every request made meanwhile."""
        scheme, host, port = origin
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if type(conn) is kind and not _dropped(conn):
                    return conn
                conn.close()
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                               context=self.context())
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def context(self) -> ssl.SSLContext:
        """Certificate and host name verified against the bundle, read at the first HTTPS
        connection (as urllib3 reads it: plain HTTP never does, and a bad bundle fails that
        connection, not the client's construction)."""
        if self._context is None:
            import certifi  # requests' own DEFAULT_CA_BUNDLE_PATH

            bundle = self.bundle or certifi.where()
            where = {"capath": bundle} if os.path.isdir(bundle) else {"cafile": bundle}
            context = ssl.create_default_context(**where)
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
            self._context = context
        return self._context

    def give(self, origin: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.size:
                idle.append(conn)
                return
        conn.close()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the peer (or sent what
    no request asked for): it must not carry the next request. As urllib3 checks."""
    sock = conn.sock
    if not isinstance(sock, socket.socket):  # none yet, or a recorder's stand-in
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class Thin:
    """Kept-alive connections, as many kept as requests' pool keeps; TLS always verified."""

    def __init__(self, settings: Settings, pool_size: int) -> None:
        self.timeout = settings.timeout
        self.pool = _Pool(pool_size, settings.timeout, settings.ca_bundle)
        self.headers = default_headers()

    def send(self, method: str, url: str, kwargs: dict[str, Any]) -> Answer:
        headers = {**self.headers, **(kwargs.get("headers") or {})}
        body = None
        if kwargs.get("json") is not None:
            body = json.dumps(kwargs["json"], allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"  # as requests sends an empty body
        # quoted as requests quotes it (a space in an env name, say): http.client refuses
        # what a server must never see raw
        target = requote(with_query(url, kwargs.get("params")))
        parts = urllib.parse.urlsplit(target)
        origin = (parts.scheme, parts.hostname or "",
                  parts.port or (443 if parts.scheme == "https" else 80))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn = self.pool.take(origin)
        except ssl.SSLError as exc:  # the bundle cannot be read as certificates
            raise _never_opened("SSLError", target, exc) from None
        if conn.sock is None:
            _open(conn, target)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            content = resp.read()
        except http.client.InvalidURL as exc:  # nothing was sent; as requests refuses it
            conn.close()
            import requests

            raise requests.exceptions.InvalidURL(str(exc)) from None
        except TimeoutError as exc:
            conn.close()
            import requests

            raise requests.ReadTimeout(f"{target}: read timed out ({exc})") from None
        except ssl.SSLError as exc:
            conn.close()
            import requests

            raise requests.exceptions.SSLError(exc) from None
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            raise _aborted("Connection aborted.", exc) from None
        if getattr(resp, "will_close", True):  # (a recorder's stand-in may not say: closed)
            conn.close()
        else:
            self.pool.give(origin, conn)
        return Answer(resp.status, resp.reason, resp.headers,
                      _decoded(content, resp.headers.get("Content-Encoding"), target), target)


def _open(conn: http.client.HTTPConnection, url: str) -> None:
    """Connect (and shake hands); a failure here means the request was never sent, and is
    raised as urllib3 raises it under requests, so the retry layer knows that."""
    try:
        conn.connect()
    except (ssl.SSLError, ssl.CertificateError) as exc:
        conn.close()
        raise _never_opened("SSLError", url, exc) from None
    except TimeoutError as exc:
        conn.close()
        import requests

        raise requests.ConnectTimeout(f"{url}: connect timed out ({exc})") from None
    except OSError as exc:  # refused, unreachable, the name not known (socket.gaierror)
        conn.close()
        raise _never_opened("ConnectionError", url, exc) from None


def _never_opened(kind: str, url: str, exc: Exception) -> Exception:
    """requests' `kind` over urllib3's MaxRetryError, whose reason is a NewConnectionError
    for a connection that could not be made (what the retry layer reads as never sent)."""
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason: Exception = exc if kind == "SSLError" else NewConnectionError(
        None, f"Failed to establish a new connection: {exc}")  # type: ignore[arg-type]
    error = MaxRetryError(None, url, reason)  # type: ignore[arg-type]
    return requests.exceptions.SSLError(error) if kind == "SSLError" else \
        requests.ConnectionError(error)


def _aborted(message: str, exc: Exception | None = None) -> Exception:
    """A connection that broke, or an answer that cannot be read: requests' ConnectionError
    over urllib3's ProtocolError, as requests raises it (retried where a repeat is safe)."""
    import requests
    from urllib3.exceptions import ProtocolError

    return requests.ConnectionError(ProtocolError(message, exc) if exc is not None else
                                    ProtocolError(message))


def _decoded(content: bytes, encoding: str | None, url: str) -> bytes:
    """The body as sent before its Content-Encoding (gzip, deflate: what was asked for)."""
    kind = (encoding or "").strip().lower()
    if not content or kind in ("", "identity"):
        return content
    try:
        if kind in ("gzip", "x-gzip"):
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if kind == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise _aborted(f"{url}: the {kind} body does not decode ({exc})") from None
    # a garbled answer, as a cut one is: retried where a repeat is safe, else ambiguous
    raise _aborted(f"{url}: answered in an encoding not asked for ({kind})")


def default_headers() -> dict[str, str]:
    """requests' default headers (its User-Agent names its version), but the encodings
    asked for are those decoded here. The version is read from requests' own
    `__version__.py` without importing requests; anything unexpected there asks requests."""
    version = None
    spec = importlib.util.find_spec("requests")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "__version__.py")
        try:
            with open(path, encoding="utf-8") as f:
                found = re.search(r'^__version__ = "([0-9][0-9A-Za-z.+-]*)"$', f.read(), re.M)
            version = found.group(1) if found else None
        except OSError:
            version = None
    if version is None:
        import requests

        version = requests.__version__
    return {"User-Agent": f"python-requests/{version}", "Accept-Encoding": ACCEPT_ENCODING,
            "Accept": "*/*", "Connection": "keep-alive"}


# what requests' quoting leaves as it is: unreserved characters and its safe set, no '%'
_AS_IS = re.compile(r"[A-Za-z0-9._~!#$&'()*+,/:;=?@\[\]-]*")


def requote(url: str) -> str:
    """The URL quoted as requests quotes it (`requests.utils.requote_uri`); the hot calls'
    URLs need nothing done and are known so without importing requests."""
    if _AS_IS.fullmatch(url):
        return url
    from requests.utils import requote_uri

    return str(requote_uri(url))


def with_query(url: str, params: dict[str, Any] | None) -> str:
    """The URL with its query, encoded as requests encodes a dict: None values dropped,
    lists repeated."""
    if not params:
        return url
    pairs = [(k, v) for k, v in params.items() if v is not None]
    if not pairs:
        return url
    query = urllib.parse.urlencode(pairs, doseq=True)
    return f"{url}&{query}" if urllib.parse.urlsplit(url).query else f"{url}?{query}"
