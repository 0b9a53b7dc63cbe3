"""What every service's rules share: the seed account, the limits, the context, paging, time.

Each rules module (`auth`, `accounts`, `templates`, `devices`, `firmware`, `files`) holds one
`Context`: the store, the account and the clock. Services talk to each other through the
small interfaces they are handed at construction, never through each other's tables.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import Conflict, EmulatorError, PreconditionFailed, ServerError, absent
from .store import Record, Store


@dataclass(frozen=True)
class Account:
    """Seed data: the company, its solution key and environment, and the login user."""

    instance: str = "avnetpoc"
    company_name: str = "Emulated Company"
    cpid: str = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    solution_key: str = "ZW11bGF0b3Itc29sdXRpb24ta2V5"
    env: str = "poc"
    pf: str = "aws"
    dedicated: bool = False
    user_email: str = "admin@example.com"
    user_password: str = "Emulator!234"
    root_entity: str = "Emulated Company"
    child_entities: tuple[str, ...] = ("Plant-A", "Plant-B")


@dataclass
class Limits:
    """Knobs on the service's behaviour that tests turn."""

    token_lifetime: int = 86400
    max_page_size: int | None = None
    # A broken service: every page number answers page 1 (the client must not loop forever).
    repeat_pages: bool = False
    guid_seed: int | None = None
    # Publish is a process on the service ("publish process started", AZ firmware swagger):
    # the upgrade reads as a draft for this long after the call (0: at once, as before).
    publish_delay_s: float = 0.0
    # `PUT /Device/{guid}` replaces the record (fields left out are cleared) and requires
    # what the AWS swagger marks required; off: it merges, as before (which one the real
    # service does, no source shows: the client must be right under both)
    put_replaces: bool = False
    # the AZ swagger's 409 on deleting a released upgrade; off, as the vendor's live test
    # shows (OLD tests/firmware.py:110 publishes upgrade_2, :121 deletes it)
    refuse_released_delete: bool = False
    # OTA outcomes, to rehearse a rollout offline: the share of devices an OTA reaches
    # (deterministic per device and update, seeded by the traffic knobs' fault_seed) and
    # how long a device takes (pending, then sent at half the delay, then done)
    ota_success_rate: float = 1.0
    ota_delay_s: float = 0.0
    ota_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def iso(ts: float) -> str:
    """Response date-time format: ISO-8601 UTC with milliseconds and `Z` (api.md 3.4)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def require(value: Any, what: str) -> Any:
    """A required request field; missing or blank is the service's 412."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PreconditionFailed(f"{what} is required.", param=what)
    return value


INT32_MAX = 2**31 - 1


def int32(value: Any) -> int | None:
    """`value` as the service's Int32 fields bind it, or None when it cannot bind.

    ASSUMPTION: the service is ASP.NET (the C# SDK, NET, and the swaggers' `int32` formats
    say so; no source shows its 400 bodies, fidelity audit C3); Int32 binding takes JSON
    integers and decimal digit strings within
    -2^31..2^31-1 and nothing else: no floats (1e400 arrives as infinity), no booleans.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.strip().lstrip("+-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) and -INT32_MAX - 1 <= value <= INT32_MAX:
        return value
    return None


def page(pairs: dict[str, Any], limits: Limits) -> tuple[int, int]:
    """pageNumber/pageSize as the service reads them.

    Source: PKG lib/query.py (pageNumber < 1 observed to answer HTTP 500). The page-size cap
    is the emulator's knob for a silent server-side cap (api.md 9.12).
    """
    number = int32(pairs.get("pageNumber") or 1)
    size = int32(pairs.get("pageSize") or 10)
    if number is None or size is None:
        raise PreconditionFailed("pageNumber and pageSize must be integers.")
    if number < 1:
        raise ServerError("An error occurred while processing your request.")
    if size < 1:
        raise PreconditionFailed("pageSize must be greater than zero.", param="pageSize")
    if limits.max_page_size is not None:
        size = min(size, limits.max_page_size)
    return (1 if limits.repeat_pages else number), size


class Context:
    """The one account's store, seed data, limits and clock, shared by every service."""

    def __init__(self, store: Store, account: Account | None, limits: Limits | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.account = account or Account()
        self.limits = limits or Limits()
        self.clock = clock
        self._rng = random.Random(self.limits.guid_seed) \
            if self.limits.guid_seed is not None else None
        self._secret: bytes | None = None

    def new_guid(self) -> str:
        """Upper-case GUIDs, as the service answers them; seeded for reproducible tests."""
        if self._rng is not None:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4)).upper()
        return str(uuid.uuid4()).upper()

    def advance(self, seconds: float) -> None:
        """Move the clock on (the control endpoint): what hours of OTA progress and soak
        time do, in a test's seconds."""
        before = self.clock
        self.clock = lambda: before() + seconds

    def now(self) -> str:
        return iso(self.clock())

    def secret(self) -> bytes:
        """The key that signs this account's JWTs and file URLs. Read once: every request
        checks a token with it, and a read of the shared connection waits behind whatever
        page another request is reading. `forget_secret` after the state is seeded anew."""
        if self._secret is None:
            self._secret = bytes.fromhex(self.store.meta("jwt_secret") or "")
        return self._secret

    def forget_secret(self) -> None:
        self._secret = None

    def fetch(self, kind: str, guid: str, what: str,
              missing: type[EmulatorError] = Conflict) -> Record:
        """One record by GUID, or the service's "doesn't exist" refusal (409 unless the
        operation's source shows a 404)."""
        record = self.store.get(kind, guid)
        if record is None:
            raise absent(what, missing)
        return record
