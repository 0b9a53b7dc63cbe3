"""The transport: one attempt of one HTTP request, as httpx cuts it.

One `requests.Session` with a connection pool sized for parallel work, proxies and the CA
bundle read from the environment once, a timeout on every request, TLS always verified.
Hooks see every request, answer and failure: the tracer (`IOTC_API_TRACE`, secrets
redacted) and the `Date` header the clock check reads. Retries are the next layer's
(`retry.py`); this one raises what `requests` raises.
May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
from typing import IO, TYPE_CHECKING, Any

from .redact import REDACTED, redact, redact_text
from .settings import Settings
from .thin import Thin, thin_enough

if TYPE_CHECKING:
    import requests


def network_errors() -> tuple[type[Exception], ...]:
    """What a request that did not get an answer raises (requests' ConnectionError and
    Timeout, which the thin path raises too). A function, so `except network_errors():`
    imports requests only once something was raised: a command whose calls all take the
    thin path never pays requests' ~90 ms of imports."""
    import requests

    return requests.ConnectionError, requests.Timeout

DOWNLOAD = "file download"  # how a download is named in errors and traces (never its URL)


class Transport:
    """Sends one request; `shown` names it in traces (never a URL that holds a secret)."""

    def __init__(self, settings: Settings, http: requests.Session | None = None,
                 pool_size: int = 32, trace_stream: IO[str] | None = None) -> None:
        self.settings = settings
        self.pool_size = pool_size
        # the hot calls (JSON in, JSON out) skip requests and urllib3 (`thin`);
        # a session handed in (a test double) gets every request
        self.thin = Thin(settings, pool_size) if http is None else None
        self._http = http
        self._http_ready = False
        self._made = threading.Lock()
        self.tracer = Tracer(settings.trace, trace_stream)
        self.last_date: str | None = None  # the service's clock, as its last answer said
        # answers received and the seconds they took: the latency a plan's estimate uses
        self.answered = 0
        self.waited = 0.0
        self._count = threading.Lock()
        self._proxies: dict[str, dict[str, str]] = {}

    @property
    def http(self) -> requests.Session:
        """The requests session for what the thin path does not carry (files, downloads,
        proxies), made at its first use."""
        with self._made:
            if not self._http_ready:
                self._http = self._session(self._http)
                self._http_ready = True
            assert self._http is not None
            return self._http

    def _session(self, given: requests.Session | None) -> requests.Session:
        """What requests reads from the environment on every request (proxies, CA bundle),
        read once per session instead: its per-request proxy lookup walks all of
        os.environ twice, which cost more CPU than parsing the 108 pages of a 10,000-device
        plan. Proxies are still chosen per host, NO_PROXY honoured (`_proxies_for`); the CA
        bundle of REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE still applies; certificates are always
        verified; a ~/.netrc is no longer consulted (the client sends its own credentials)."""
        import requests
        from requests.adapters import HTTPAdapter

        http = given or requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=self.pool_size, max_retries=0)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        http.trust_env = False
        if self.settings.ca_bundle:
            http.verify = self.settings.ca_bundle
        return http

    def send(self, method: str, url: str, shown: str, kwargs: dict[str, Any]) -> \
            requests.Response:
        self.tracer.request(method, url, kwargs)
        started = time.monotonic()
        proxies = self._proxies_for(url)
        try:
            if self.thin is not None and not proxies and thin_enough(kwargs) and \
                    url.isascii():  # a name to IDNA-encode: requests' own work
                resp = self.thin.send(method, url, kwargs)
            else:
                # redirects are never followed, on either path (`envelope.moved`)
                resp = self.http.request(method, url, timeout=self.settings.timeout,
                                         proxies=proxies, **{"allow_redirects": False,
                                                             **kwargs})
        except network_errors() as exc:
            self.tracer.line(f"<- {method} {shown}: {type(exc).__name__}")
            raise
        elapsed = time.monotonic() - started
        with self._count:
            self.answered += 1
            self.waited += elapsed
        self.tracer.response(resp, shown, elapsed)
        self.last_date = resp.headers.get("Date") or self.last_date
        return resp

    def _proxies_for(self, url: str) -> dict[str, str]:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(origin)
        if found is None:
            found = self._proxies[origin] = _environ_proxies(origin)
        return found

    def latency(self) -> float | None:
        """Mean seconds per answer so far (None before the first)."""
        with self._count:
            return self.waited / self.answered if self.answered else None


class Tracer:
    """`IOTC_API_TRACE`: one line per request and answer on stderr, secrets redacted."""

    def __init__(self, enabled: bool, stream: IO[str] | None = None) -> None:
        self.enabled = enabled
        self._stream = stream

    def line(self, text: str) -> None:
        if self.enabled:
            print(redact_text(text), file=self._stream or sys.stderr, flush=True)

    def request(self, method: str, url: str, kwargs: dict[str, Any]) -> None:
        if not self.enabled:
            return
        parts = [f"-> {method} {url}"]
        if kwargs.get("params"):
            parts.append(f"params={redact(kwargs['params'])}")
        if kwargs.get("json") is not None:
            parts.append(f"json={json.dumps(redact(kwargs['json']))}")
        if kwargs.get("data"):
            parts.append(f"form={redact(kwargs['data'])}")
        if kwargs.get("files"):
            parts.append(f"files={sorted(kwargs['files'])}")
        self.line(" ".join(parts))

    def response(self, resp: requests.Response, shown: str, elapsed: float) -> None:
        if not self.enabled:
            return
        if shown == DOWNLOAD:  # a streamed body: reading it here would defeat the stream
            self.line(f"<- {resp.status_code} {shown} ({elapsed * 1000:.0f} ms)")
            return
        try:
            body: Any = redact(resp.json())
            if shown.endswith("/Auth/basic-token") and isinstance(body, dict):
                body["data"] = REDACTED
            text = json.dumps(body)
        except ValueError:
            text = repr(resp.text[:200])
        self.line(f"<- {resp.status_code} {shown} ({elapsed * 1000:.0f} ms) {text[:2000]}")


def _environ_proxies(origin: str) -> dict[str, str]:
    """The proxies requests would use for `origin`. On Linux they come only from the
    environment, so where no `*_proxy` variable is set there are none, known without
    importing requests; elsewhere (macOS and Windows also read system settings), and
    whenever one is set, requests decides."""
    if sys.platform.startswith("linux") and \
            not any(name.lower().endswith("_proxy") for name in os.environ):
        return {}
    import requests

    return dict(requests.utils.get_environ_proxies(origin))
