"""Retries and the throttle, wrapped around the transport.

Retries only where a request can safely repeat: GET, PUT and DELETE on connection errors,
429, 502, 503 and 504, with capped exponential backoff and jitter, honouring `Retry-After`.
A POST is retried only when the service provably did not act on it (429, or a connection
that was never opened); any other POST failure is raised as `ambiguous`. Every request
passes one shared AIMD throttle, so a rate-limited service sees the client slow down
together instead of ten threads retrying blindly.
May import: nothing else of iotc_apply.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import TransportError
from .settings import Settings
from .transport import Transport, network_errors

if TYPE_CHECKING:
    import requests

RETRY_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD"})
MAX_THROTTLED = 60  # 429s waited out per request before its 429 is final
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Throttle:
    """Requests in flight, limited by additive increase, multiplicative decrease (AIMD).

    Starts at the pool's size; each answer that is not a 429 raises the limit by 1/limit
    (about one more request per round trip), each 429 halves it (never below 1) and pauses
    every thread until its Retry-After has passed.
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
                    self._cond.wait(1.0)  # woken by a release; the timeout is a safety net
                    continue
            sleep(wait)  # outside the lock: the pause is shared, each thread sleeps it

    def release(self, throttled_for: float | None) -> None:
        """Give the slot back and wake as many waiters as there are free slots now (one,
        mostly): waking every waiter on every answer made 100 threads contend for the GIL
        a hundred times per request, and CPU per request rose with the parallelism."""
        with self._cond:
            self.inflight -= 1
            if throttled_for is None:
                self.limit = min(self.ceiling, self.limit + 1.0 / self.limit)
            else:
                self.limit = max(1.0, self.limit / 2)
                self.paused_until = max(self.paused_until, self._clock() + throttled_for)
            free = int(self.limit) - self.inflight
            if free > 0:
                self._cond.notify(free)


class Retrying:
    """The transport with the retry policy and the throttle; same `send`."""

    def __init__(self, transport: Transport, settings: Settings, pool_size: int = 32,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.transport = transport
        self.settings = settings
        self.throttle = Throttle(pool_size)
        self._sleep = sleep
        self._rng = random.Random()

    def send(self, method: str, url: str, shown: str, kwargs: dict[str, Any]) -> \
            requests.Response:
        """Send with retries where safe; `shown` names the request in errors and traces.

        A 429 is an instruction, not a failure: it is waited out (Retry-After, shared by all
        threads) and retried up to MAX_THROTTLED times without using the retry budget of
        other errors; a Retry-After above the cap is an error, never hours of silence.
        """
        may_repeat = method in SAFE_METHODS
        attempts = self.settings.max_retries + 1
        attempt = throttled = 0
        while True:
            self.throttle.acquire(self._sleep)
            try:
                resp = self.transport.send(method, url, shown, kwargs)
            except network_errors() as exc:  # evaluated only when something was raised
                self.throttle.release(None)
                never_sent = _never_sent(exc)
                if (may_repeat or never_sent) and attempt + 1 < attempts and not _refused(exc):
                    self._sleep(self.backoff(attempt))
                    attempt += 1
                    continue
                raise TransportError(_describe(exc, url), method, shown,
                                     ambiguous=not may_repeat and not never_sent) from None
            if resp.status_code == 429:
                wait = retry_after(resp) or self.backoff(attempt)
                self.throttle.release(wait)
                cap = self.settings.max_retry_after
                if wait > cap:
                    raise TransportError(f"the service asks to wait {wait:.0f} s before "
                                         f"trying again (more than the {cap:g} s allowed: "
                                         "IOTC_MAX_RETRY_AFTER)", method, shown)
                if throttled < MAX_THROTTLED:
                    throttled += 1
                    continue
                return resp
            self.throttle.release(None)
            if resp.status_code in RETRY_STATUSES and may_repeat and attempt + 1 < attempts:
                self._sleep(max(retry_after(resp), self.backoff(attempt)))
                attempt += 1
                continue
            return resp

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter over its upper half."""
        ceiling = min(8.0, 0.2 * (2 ** attempt))
        return ceiling * (0.5 + self._rng.random() / 2)


def retry_after(resp: requests.Response) -> float:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _never_sent(exc: Exception) -> bool:
    """True when the connection was never opened, so the service cannot have acted."""
    import requests
    from urllib3.exceptions import NewConnectionError

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
    import requests

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
