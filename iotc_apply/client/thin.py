"""The thin path: JSON requests straight through urllib3's pool, without requests on top.

Every page of a 100,000-device plan and every device of an apply is one small JSON request,
and requests spent ~0.5 ms of CPU on each beyond what urllib3 needs (preparing the request
through runtime-checked protocols, merging settings, cookie jars, hooks): half the client's
cost per call. This sends exactly what requests would (its default headers, the same query
encoding, the JSON body as requests encodes it), verifies TLS the same way (certificate and
host name, against REQUESTS_CA_BUNDLE or certifi's bundle), and raises the exceptions
requests raises, so the retry layer and the error messages cannot tell the two apart.
Requests with files, forms or a streamed body, and any request that goes through a proxy,
stay on requests (`Transport.send` decides). May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

import requests
import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH, default_headers
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util.retry import Retry

from .settings import Settings

NO_RETRY = Retry(0, read=False)  # what requests passes: no retries here, errors wrapped


def thin_enough(kwargs: dict[str, Any]) -> bool:
    """A request the thin path sends as requests would: query, headers and JSON only."""
    return not (kwargs.get("files") or kwargs.get("data") or kwargs.get("stream")
                or kwargs.get("allow_redirects") or set(kwargs) - KNOWN)


KNOWN = frozenset({"params", "json", "data", "files", "headers"})


class Answer:
    """The parts of `requests.Response` the client reads, over a urllib3 response."""

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str) -> None:
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive, as requests' are
        self.content: bytes = raw.data
        self.url = url
        self.reason = raw.reason

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
            raise requests.JSONDecodeError(str(exc), self.text[:100], 0) from None


class Thin:
    """One urllib3 pool manager, sized like requests' pool, TLS always verified."""

    def __init__(self, settings: Settings, pool_size: int) -> None:
        self.timeout = settings.timeout
        bundle = settings.ca_bundle or DEFAULT_CA_BUNDLE_PATH  # requests' own (certifi's)
        where = {"ca_cert_dir": bundle} if os.path.isdir(bundle) else {"ca_certs": bundle}
        self.pools = urllib3.PoolManager(num_pools=8, maxsize=pool_size, block=False,
                                         cert_reqs="CERT_REQUIRED", **where)
        self.headers = dict(default_headers())

    def send(self, method: str, url: str, kwargs: dict[str, Any]) -> Answer:
        headers = {**self.headers, **(kwargs.get("headers") or {})}
        body = None
        if kwargs.get("json") is not None:
            body = json.dumps(kwargs["json"], allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"  # as requests sends an empty body
        target = with_query(url, kwargs.get("params"))
        try:
            raw = self.pools.urlopen(method, target, body=body, headers=headers,
                                     retries=NO_RETRY, redirect=False, preload_content=True,
                                     timeout=urllib3.Timeout(connect=self.timeout,
                                                             read=self.timeout))
        except MaxRetryError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectTimeoutError) and \
                    not isinstance(reason, NewConnectionError):
                raise requests.ConnectTimeout(exc) from None
            if isinstance(reason, Urllib3SSLError):
                raise requests.exceptions.SSLError(exc) from None
            raise requests.ConnectionError(exc) from None
        except ReadTimeoutError as exc:
            raise requests.ReadTimeout(exc) from None
        except Urllib3SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        except (ProtocolError, OSError) as exc:
            raise requests.ConnectionError(exc) from None
        return Answer(raw, target)


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
