"""The emulator's behaviour knobs: latency, page-size cap, rate limit, faults, counters.

Kept apart from the rules (state.py) because they model the network and the service's
operations, not the account: a fault never changes what is stored, except `commit_then_fail`,
whose whole point is that the change is stored while the caller sees a failure.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

FAULT_KINDS = ("500", "503", "html502", "drop", "timeout", "commit_then_fail")


@dataclass(frozen=True)
class FaultRule:
    """Inject `kinds` into a share `rate` of the requests whose route matches `pattern`.

    `pattern` is a glob over `"METHOD /route"`, where the route is the path after the
    service's base URL with its variables named as in the API facts, e.g. `POST /Device`,
    `DELETE /Device/<guid>`, `* /firmware-upgrade*`.
    """

    pattern: str
    rate: float
    kinds: tuple[str, ...] = ("503",)
    limit: int | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """`PATTERN=RATE[:KIND,KIND...][@N]`, e.g. `POST /Device=0.2:503,drop` or
        `GET /Device=1:503@2` (only the first two matching requests fail)."""
        pattern, sep, rest = spec.rpartition("=")
        if not sep or not pattern.strip():
            raise ValueError(f"fault spec {spec!r}: expected PATTERN=RATE[:KINDS][@N]")
        rest, at, limit_text = rest.partition("@")
        rate_text, _, kinds_text = rest.partition(":")
        try:
            rate = float(rate_text)
            limit = int(limit_text) if at else None
        except ValueError:
            raise ValueError(f"fault spec {spec!r}: RATE is a number, N a whole number") \
                from None
        kinds = tuple(k.strip() for k in kinds_text.split(",") if k.strip()) or ("503",)
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown or not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault spec {spec!r}: rate in [0,1], kinds from {FAULT_KINDS}")
        return cls(pattern.strip(), rate, kinds, limit)


@dataclass
class Knobs:
    """Mutable at run time through the control endpoint; read on every request."""

    latency_ms: float = 0.0
    rate_limit: float | None = None
    faults: list[FaultRule] = field(default_factory=list)
    fault_seed: int | None = None
    hang_seconds: float = 5.0
    # "swagger": not-found refusals worded as the swaggers word them; "terse": a second
    # wording, so tests prove the client decides "absent" by operation, never by words.
    wording: str = "swagger"
    # Attribute and command lists of an existing template answer 204 when empty.
    empty_204: bool = False
    # The first try of every distinct create fails, alternately before the service stores
    # it (503) and after (commit_then_fail).
    first_create_fails: bool = False
    # Routes (`METHOD /route` as counted) this service version lacks: answered as a routing
    # 404 page (HTML, not the JSON envelope), to prove the client's UnsupportedCall message.
    missing_routes: tuple[str, ...] = ()
    # How a missing route answers: "html" (a routing page), or "json" (a gateway's JSON
    # 404 in the service's envelope shape), which must not read as "absent" either.
    missing_route_body: str = "html"
    # Routes answered "Success" without doing anything: a service that loses a change, to
    # prove apply reports `done` only where a read-back shows the change.
    ignored_routes: tuple[str, ...] = ()


class Traffic:
    """Applies the knobs to requests and counts them; thread safe."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(knobs.fault_seed)
        self._fired: Counter[int] = Counter()
        self._tokens = knobs.rate_limit or 0.0
        self._last = time.monotonic()
        self._creates: set[str] = set()

    def configure(self, knobs: Knobs) -> None:
        with self._lock:
            self.knobs = knobs
            self._rng = random.Random(knobs.fault_seed)
            self._fired = Counter()
            self._creates = set()
            self._tokens = knobs.rate_limit or 0.0
            self._last = time.monotonic()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()

    def throttle(self) -> float | None:
        """Seconds the caller must wait when over the rate limit (token bucket), else None."""
        rate = self.knobs.rate_limit
        if not rate:
            return None
        with self._lock:
            now = time.monotonic()
            self._tokens = min(rate, self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / rate

    def pick_fault(self, key: str) -> str | None:
        """The fault to inject into this request, if a rule fires."""
        with self._lock:
            for index, rule in enumerate(self.knobs.faults):
                if rule.limit is not None and self._fired[index] >= rule.limit:
                    continue
                if fnmatch.fnmatchcase(key, rule.pattern) and self._rng.random() < rule.rate:
                    self._fired[index] += 1
                    return self._rng.choice(rule.kinds)
        return None

    def first_create(self, fingerprint: str) -> str | None:
        """With `first_create_fails`: the fault for the first sight of this create."""
        if not self.knobs.first_create_fails:
            return None
        with self._lock:
            if fingerprint in self._creates:
                return None
            self._creates.add(fingerprint)
            return "503" if len(self._creates) % 2 else "commit_then_fail"

    @staticmethod
    def retry_after(wait: float) -> str:
        """`Retry-After` is whole seconds (RFC 9110 delta-seconds), never zero."""
        return str(max(1, math.ceil(wait)))
