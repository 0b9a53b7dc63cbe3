"""The HTTP session: discovery, login and tokens, retries, envelopes, paging, tracing.

One `ApiSession` per process, shared by every resource client and every worker thread:
one `requests.Session` with a connection pool sized for parallel work, a timeout on every
request, and retries only where a request can safely repeat (GET, PUT, DELETE on connection
errors, 429, 502, 503, 504, with capped exponential backoff and jitter, honouring
`Retry-After`). A POST is retried only when the service provably did not act on it (429, or
a connection that was never opened); any other POST failure is raised as `ambiguous`.
May import: `model`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from ..model import Identity
from . import coverage
from .errors import (
    ConfigError,
    Forbidden,
    StatusError,
    TransportError,
    Unauthorized,
    UnsupportedCall,
    status_error,
)
from .redact import REDACTED, redact, redact_text, redact_url, remember
from .settings import Login, Settings, TokenStore

BASE_URL_KEYS = {"auth": "authBaseUrl", "user": "userBaseUrl", "device": "deviceBaseUrl",
                 "firmware": "firmwareBaseUrl", "file": "fileBaseUrl",
                 "telemetry": "telemetryBaseUrl"}
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD"})
PROACTIVE_REFRESH_AFTER = 3600.0


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


LOOPBACK = ("127.0.0.1", "localhost", "::1")
DOWNLOAD = "file download"  # how a download is named in errors and traces (never its URL)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# Pages of one listing fetched at once when a count hint says there are more.
PAGES_AHEAD = 16
MAX_THROTTLED = 60  # 429s waited out per request before its 429 is final


class Throttle:
    """Requests in flight, limited by additive increase, multiplicative decrease (AIMD).

    Starts at the pool's size; each answer that is not a 429 raises the limit by 1/limit
    (about one more request per round trip), each 429 halves it (never below 1) and pauses
    every thread until its Retry-After has passed, so a rate-limited service sees the
    client slow down together instead of ten threads retrying blindly.
    """

    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = float(max(1, ceiling))
        self.limit = self.ceiling
        self.inflight = 0
        self.paused_until = 0.0
        self._clock = clock
        self._cond = threading.Condition()

    def acquire(self, sleep: Callable[[float], None]) -> None:
        while True:
            with self._cond:
                wait = self.paused_until - self._clock()
                if wait <= 0:
                    if self.inflight < int(self.limit):
                        self.inflight += 1
                        return
                    self._cond.wait(0.05)
                    continue
            sleep(wait)  # outside the lock: the pause is shared, each thread sleeps it

    def release(self, throttled_for: float | None) -> None:
        with self._cond:
            self.inflight -= 1
            if throttled_for is None:
                self.limit = min(self.ceiling, self.limit + 1.0 / self.limit)
            else:
                self.limit = max(1.0, self.limit / 2)
                self.paused_until = max(self.paused_until, self._clock() + throttled_for)
            self._cond.notify_all()
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
        self.http = http or requests.Session()
        self._environment_once()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        self._sleep = sleep
        self._clock = clock
        self._trace_stream = trace_stream
        self._throttle = Throttle(pool_size)
        self._lock = threading.RLock()
        self._login: Login | None = None
        self._last_date: str | None = None
        self._refused: ConfigError | None = None
        self._urls: dict[str, str] | None = None
        self._rng = random.Random()

    # -- discovery -----------------------------------------------------------------------------

    def base_urls(self) -> dict[str, str]:
        """The service base URLs, from the stored login or from discovery (cached)."""
        with self._lock:
            if self._urls is None:
                stored = self._stored_login()
                self._urls = stored.base_urls if stored else self._discover()
            return self._urls

    def discover(self) -> dict[str, str]:
        """Discovery asked now, not the stored login's copy: is the service there, for this
        solution key, environment and platform? (`iotc doctor`)"""
        with self._lock:
            stored = self._stored_login()
            if not self.settings.skey and stored is not None:
                self.settings = replace(self.settings, skey=stored.skey, env=stored.env,
                                        pf=stored.pf)
            self._urls = self._discover()
            return dict(self._urls)

    def refresh_now(self) -> float:
        """Refresh the access token now; seconds the new one is valid. (`iotc doctor`)"""
        with self._lock:
            login = self._refresh(self._current_login())
            return login.token_expiry - self._clock()

    def server_date(self) -> str | None:
        """The `Date` header of the last answer the service sent (for the clock check)."""
        return self._last_date

    def _discover(self) -> dict[str, str]:
        s = self.settings
        if not s.skey:
            raise ConfigError("no solution key: set IOTC_SKEY (or --skey) or run 'iotc login'")
        _check_discovery_url(s.discovery_url)
        url = f"{s.discovery_url.rstrip('/')}/solutionkey/{s.skey}/env/{s.env}"
        shown = f"discovery for pf={s.pf} env={s.env}"
        resp = self._send("GET", url, shown, {"params": {"version": s.api_version, "pf": s.pf}})
        try:
            body = resp.json()
        except ValueError:
            raise ConfigError(f"{shown} failed: HTTP {resp.status_code}, not JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if resp.status_code != 200 or not isinstance(data, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise ConfigError(f"{shown} failed: HTTP {resp.status_code}"
                              + (f": server reported: {message}" if message else ""))
        missing = [k for k in BASE_URL_KEYS.values() if not data.get(k)]
        if missing:
            raise ConfigError(f"{shown}: answer lacks {', '.join(missing)}")
        return {svc: str(data[key]).rstrip("/") for svc, key in BASE_URL_KEYS.items()}

    # -- login and tokens ----------------------------------------------------------------------

    def _stored_login(self) -> Login | None:
        if self._login is None:
            stored = self.store.load()
            if stored is not None and stored.matches(self.settings):
                self._login = stored
        return self._login

    def login(self, username: str | None = None, password: str | None = None) -> Identity:
        """Log in with the basic-token handshake and store the tokens (never the password)."""
        with self._lock:
            if self._refused is not None:
                raise self._refused
            user = username or self.settings.username
            secret = password or self.settings.password
            if not user or not secret:
                raise ConfigError("no credentials: set IOTC_USER and IOTC_PASS or run "
                                  "'iotc login'")
            self._login = None
            self._urls = self._discover()
            basic = self._auth_call("GET", "/Auth/basic-token", {}).body.get("data")
            headers = {"Authorization": f"Basic {basic}",
                       "Solution-key": self.settings.skey or ""}
            try:
                body = self._auth_call("POST", "/Auth/login",
                                       {"json": {"username": user, "password": secret},
                                        "headers": headers}).body
            except (Unauthorized, Forbidden) as exc:
                # Never tried twice: each wrong password counts towards the account's lockout.
                self._refused = ConfigError(f"login refused for {user}: {str(exc).rstrip('.')}"
                                            "; not retried (repeated attempts can lock the "
                                            "account)")
                raise self._refused from None
            self._login = self._new_login(user, body, None)
            self.store.save(self._login)
            return self.identity()

    def logout(self) -> bool:
        with self._lock:
            self._login, self._urls = None, None
            return self.store.clear()

    def _new_login(self, user: str, body: dict[str, Any], old: Login | None) -> Login:
        token = body.get("access_token")
        if not token or not body.get("refresh_token"):
            raise ConfigError("login answer lacks access_token or refresh_token")
        remember(token, body["refresh_token"])
        now = self._clock()
        claims = decode_claims(token).get("user", {})
        dedicated = claims.get("isCpidOptional")
        if dedicated is None and old is not None:
            dedicated = old.dedicated  # refreshed tokens lack the claim; keep the login's
        s = self.settings
        return Login(discovery_url=old.discovery_url if old else s.discovery_url,
                     skey=old.skey if old else s.skey or "", env=old.env if old else s.env,
                     pf=old.pf if old else s.pf, username=user,
                     base_urls=dict(self._urls or {}), access_token=token,
                     refresh_token=body["refresh_token"], token_time=now,
                     token_expiry=now + float(body.get("expires_in") or 0), dedicated=dedicated)

    def _auth_call(self, method: str, path: str, kwargs: dict[str, Any]) -> Envelope:
        url = self.base_urls()["auth"] + path
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        resp = self._send(method, url, path, {**kwargs, "headers": headers})
        return self._parse(resp, method, path, (200,))

    def _current_login(self) -> Login:
        stored = self._stored_login()
        if stored is not None:
            return stored
        if self.settings.username and self.settings.password:
            self.login()
            assert self._login is not None
            return self._login
        raise ConfigError("not logged in: run 'iotc login' or set IOTC_USER, IOTC_PASS and "
                          "IOTC_SKEY")

    def _access_token(self, force_refresh_of: str | None = None) -> str:
        with self._lock:
            login = self._current_login()
            now = self._clock()
            stale = login.token_expiry <= now + 30 or (
                self.settings.token_refresh and login.token_time + PROACTIVE_REFRESH_AFTER < now)
            if stale or force_refresh_of == login.access_token:
                login = self._refresh(login)
            return login.access_token

    def _refresh(self, login: Login) -> Login:
        try:
            body = self._auth_call("POST", "/Auth/refresh-token",
                                   {"json": {"refreshtoken": login.refresh_token}}).body
        except StatusError:
            if self.settings.username and self.settings.password:
                self.login()
                assert self._login is not None
                return self._login
            raise ConfigError("the stored login has expired: run 'iotc login'") from None
        self._urls = self._urls or login.base_urls
        self._login = self._new_login(login.username, body, login)
        self.store.save(self._login)
        return self._login

    def identity(self) -> Identity:
        """The logged-in account, from the access token's claims."""
        with self._lock:
            login = self._current_login()
            user = decode_claims(login.access_token).get("user", {})
            dedicated = user.get("isCpidOptional", login.dedicated)
            if dedicated is None:
                dedicated = login.pf == "aws" and login.env == "prod"
            return Identity(username=login.username, user_guid=str(user.get("id", "")),
                            company_guid=str(user.get("companyId", "")),
                            cpid=str(user.get("cpId", "")),
                            entity_guid=str(user.get("entityGuid", "")), pf=login.pf,
                            env=login.env, dedicated=bool(dedicated))

    # -- calls -------------------------------------------------------------------------------

    def call(self, service: str, method: str, path: str, *, params: dict[str, Any] | None = None,
             json_body: Any = None, data: dict[str, Any] | None = None,
             files: dict[str, Any] | None = None, ok: tuple[int, ...] = (200,)) -> Envelope:
        """One API call with auth, retries and envelope parsing; raises the tree's errors."""
        token = self._access_token()
        url = self.base_urls()[service] + path
        kwargs: dict[str, Any] = {"params": params, "json": json_body, "data": data,
                                  "files": files}
        for attempt in (1, 2):
            kwargs["headers"] = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
            resp = self._send(method, url, path, kwargs)
            try:
                return self._parse(resp, method, path, ok)
            except Unauthorized:
                if attempt == 2:
                    raise
                token = self._access_token(force_refresh_of=token)
            except StatusError as exc:
                _raise_if_unsupported(service, method, path, resp)
                raise exc from None
        raise AssertionError("unreachable")

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
            resp = self._send("GET", url, DOWNLOAD, {"stream": True, "allow_redirects": False})
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

    # -- transport ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, shown: str, kwargs: dict[str, Any]) -> \
            requests.Response:
        """Send with retries where safe; `shown` names the request in errors and traces.

        Every request passes the shared throttle (AIMD concurrency and a pause after a 429).
        A 429 is an instruction, not a failure: it is waited out (Retry-After, shared by all
        threads) and retried up to MAX_THROTTLED times without using the retry budget of
        other errors; a Retry-After above the cap is an error, never hours of silence.
        """
        may_repeat = method in SAFE_METHODS
        attempts = self.settings.max_retries + 1
        attempt = throttled = 0
        while True:
            self._throttle.acquire(self._sleep)
            self._trace_request(method, url, kwargs)
            started = time.monotonic()
            try:
                resp = self.http.request(method, url, timeout=self.settings.timeout,
                                         proxies=self._proxies_for(url), **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._throttle.release(None)
                never_sent = _never_sent(exc)
                self._trace(f"<- {method} {shown}: {type(exc).__name__}")
                refused = _refused(exc)
                if (may_repeat or never_sent) and attempt + 1 < attempts and not refused:
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise TransportError(_describe(exc, url), method, shown,
                                     ambiguous=not may_repeat and not never_sent) from None
            self._trace_response(resp, shown, time.monotonic() - started)
            self._last_date = resp.headers.get("Date") or self._last_date
            if resp.status_code == 429:
                wait = _retry_after(resp) or self._backoff(attempt)
                self._throttle.release(wait)
                cap = self.settings.max_retry_after
                if wait > cap:
                    raise TransportError(f"the service asks to wait {wait:.0f} s before "
                                         f"trying again (more than the {cap:g} s allowed: "
                                         "IOTC_MAX_RETRY_AFTER)", method, shown)
                if throttled < MAX_THROTTLED:
                    throttled += 1
                    continue
                return resp
            self._throttle.release(None)
            retryable = resp.status_code in RETRY_STATUSES and may_repeat
            if retryable and attempt + 1 < attempts:
                self._sleep(max(_retry_after(resp), self._backoff(attempt)))
                attempt += 1
                continue
            return resp

    def _environment_once(self) -> None:
        """What requests reads from the environment on every request (proxies, CA bundle),
        read once per session instead: its per-request proxy lookup walks all of
        os.environ twice, which cost more CPU than parsing the 108 pages of a 10,000-device
        plan. Proxies are still chosen per host, NO_PROXY honoured (`_proxies_for`); the CA
        bundle of REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE still applies; certificates are always
        verified; a ~/.netrc is no longer consulted (the client sends its own credentials)."""
        self.http.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.http.verify = bundle
        self._proxies: dict[str, dict[str, str]] = {}

    def _proxies_for(self, url: str) -> dict[str, str]:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(origin)
        if found is None:
            found = self._proxies[origin] = requests.utils.get_environ_proxies(origin)
        return found

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter over its upper half."""
        ceiling = min(8.0, 0.2 * (2 ** attempt))
        return ceiling * (0.5 + self._rng.random() / 2)

    def _parse(self, resp: requests.Response, method: str, path: str,
               ok: tuple[int, ...]) -> Envelope:
        status = resp.status_code
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

    # -- tracing -----------------------------------------------------------------------------

    def _trace(self, line: str) -> None:
        if self.settings.trace:
            line = redact_text(line)
            print(line, file=self._trace_stream or sys.stderr, flush=True)

    def _trace_request(self, method: str, url: str, kwargs: dict[str, Any]) -> None:
        if not self.settings.trace:
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
        self._trace(" ".join(parts))

    def _trace_response(self, resp: requests.Response, shown: str, elapsed: float) -> None:
        if not self.settings.trace:
            return
        if shown == DOWNLOAD:  # a streamed body: reading it here would defeat the stream
            self._trace(f"<- {resp.status_code} {shown} ({elapsed * 1000:.0f} ms)")
            return
        try:
            body: Any = redact(resp.json())
            if shown.endswith("/Auth/basic-token") and isinstance(body, dict):
                body["data"] = REDACTED
            text = json.dumps(body)
        except ValueError:
            text = repr(resp.text[:200])
        self._trace(f"<- {resp.status_code} {shown} ({elapsed * 1000:.0f} ms) {text[:2000]}")


def guid_of(value: Any) -> str:
    """GUIDs arrive upper- or lower-case (quick create answers lower-case): one spelling."""
    return str(value or "").upper()


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the client only reads its own token's claims)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


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


def _raise_if_unsupported(service: str, method: str, path: str,
                          resp: requests.Response) -> None:
    """A refusal that means "no such route" (405, 501, or a 404 without the service's JSON
    envelope) of a call known only from documentation becomes `UnsupportedCall`."""
    route_missing = resp.status_code in (405, 501) or (
        resp.status_code == 404 and "json" not in resp.headers.get("Content-Type", ""))
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
    if declared.isdigit() and int(declared) > limit:
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


def _check_discovery_url(url: str) -> None:
    """https, or plain http to this machine only (the emulator): credentials never travel
    in clear text, and a URL without a scheme is a one-line error, not a library's."""
    parsed = urllib.parse.urlsplit(url)
    loopback = parsed.hostname in LOOPBACK
    if parsed.scheme == "https" and parsed.hostname or parsed.scheme == "http" and loopback:
        return
    raise ConfigError(f"IOTC_DISCOVERY_URL must be an https:// URL (http:// only to this "
                      f"machine), not {redact_url(url)!r}")


def _retry_after(resp: requests.Response) -> float:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _never_sent(exc: Exception) -> bool:
    """True when the connection was never opened, so the service cannot have acted."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _refused(exc: Exception) -> bool:
    """Nothing listens there, or the name does not exist: retrying cannot help, and
    waiting only hides the cause."""
    text = str(exc)
    return _never_sent(exc) and any(s in text for s in (
        "Connection refused", "Errno 111", "Name or service not known",
        "nodename nor servname provided"))


def _describe(exc: Exception, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"  # never the path: discovery's holds the skey
    if isinstance(exc, requests.Timeout):
        return f"{where} did not answer in time"
    if _refused(exc) and "refused" in str(exc).lower() or "Errno 111" in str(exc):
        hint = " (for the bundled emulator: start it with 'iotc emulator serve', or pass " \
               "--emulator)" if parts.hostname in LOOPBACK else ""
        return f"cannot connect to {where}: connection refused; is the service up?{hint}"
    if _never_sent(exc):
        return f"cannot connect to {where} ({_cause(exc)})"
    return f"{where} dropped the connection before answering"


def _cause(exc: Exception) -> str:
    """The innermost reason a connection failed, in a few words (e.g. name not known)."""
    text = str(exc)
    for known in ("Name or service not known", "No route to host", "Network is unreachable",
                  "certificate verify failed", "nodename nor servname provided"):
        if known in text:
            return known.lower()
    return type(exc).__name__

