"""`iotc doctor`: can this machine run iotc-apply against this account, and safely?

Each check answers one question with ok, warn or fail and one line of detail, in the order a
person would debug: is the service there for this solution key, can we log in, can the
token be refreshed, is the clock close to the service's, may this login list every kind the
reconciler reads, is the key store usable. Read-only: it lists (one item per kind) and
refreshes a token, nothing else. No secret is ever part of a detail (and the CLI's
redactor runs over every line anyway). May import: `client`.
"""

from __future__ import annotations

import email.utils
import os
import stat
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .client import ApiError, IoTConnect
from .client.errors import Forbidden, Unauthorized

OK, WARN, FAIL = "ok", "warn", "fail"
MAX_SKEW_S = 60.0  # tokens carry expiry times; a minute off is already a refresh surprise
# (what, service, path, query): the list endpoints the planner's snapshot reads.
LISTS = (
    ("templates", "device", "/device-template", {}),
    ("devices", "device", "/Device", {}),
    ("entities", "user", "/Entity", None),
    ("firmware", "firmware", "/Firmware", {}),
    ("upgrades", "firmware", "/firmware-upgrade", {"type": "both"}),
)


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str


def run(api: IoTConnect, keys_dir: Path, emulated: bool) -> Iterator[Check]:
    """Every check in order; after a failed login the account checks are skipped."""
    session = api.session
    yield Check(OK, "target", _target(session.settings.discovery_url, emulated))
    discovery = _guard("discovery", lambda: _discovery(api))
    yield discovery
    if discovery.status == FAIL:
        return
    login = _guard("login", lambda: _login(api))
    yield login
    if login.status == FAIL:
        yield Check(WARN, "account checks", "skipped: no login")
    else:
        yield _guard("token refresh", lambda: _refresh(api))
        yield _guard("clock", lambda: _clock(api))
        for what, service, path, query in LISTS:
            yield _guard(f"list {what}",
                         lambda w=what, s=service, p=path, q=query: _list(api, w, s, p, q))
    yield from _key_store(keys_dir)


def _guard(name: str, check: Callable[[], Check]) -> Check:
    """A check that raised is a failure of that check, with the client's one-line reason."""
    try:
        return check()
    except ApiError as exc:
        return Check(FAIL, name, str(exc))


def _target(url: str, emulated: bool) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    if emulated or host in ("127.0.0.1", "localhost", "::1"):
        return f"the iotc-apply emulator at {host} (not a real account)"
    return f"the real IoTConnect service ({host})"


def _discovery(api: IoTConnect) -> Check:
    s = api.session.settings
    urls = api.session.auth.discover()
    return Check(OK, "discovery", f"pf={s.pf} env={s.env}: {len(urls)} service base URLs")


def _login(api: IoTConnect) -> Check:
    me = api.session.identity()
    instance = "dedicated" if me.dedicated else "shared"
    return Check(OK, "login", f"{me.username} on cpId {me.cpid} ({instance} instance)")


def _refresh(api: IoTConnect) -> Check:
    left = api.session.auth.refresh()
    return Check(OK, "token refresh", f"new token valid for {left / 60:.0f} min")


def _clock(api: IoTConnect) -> Check:
    date = api.session.transport.last_date
    if date is None:
        return Check(WARN, "clock", "the service sent no Date header; skew unknown")
    served = email.utils.parsedate_to_datetime(date).timestamp()
    skew = time.time() - served
    status = OK if abs(skew) <= MAX_SKEW_S else WARN
    return Check(status, "clock", f"{skew:+.0f} s from the service's clock"
                 + ("" if status == OK else " (token expiry will surprise; sync the clock)"))


def _list(api: IoTConnect, what: str, service: str, path: str,
          query: dict[str, str] | None) -> Check:
    params = None if query is None else {**query, "pageNumber": 1, "pageSize": 1}
    try:
        api.session.call(service, "GET", path, params=params, ok=(200, 204))
    except (Unauthorized, Forbidden) as exc:
        return Check(FAIL, f"list {what}", f"not allowed for this login ({exc})")
    return Check(OK, f"list {what}", f"GET {path} allowed")


def _key_store(keys_dir: Path) -> Iterator[Check]:
    """Present, a real folder, private, writable; never reads a key."""
    name = "key store"
    if keys_dir.is_symlink():
        yield Check(FAIL, name, f"{keys_dir} is a symlink; the key store follows none")
        return
    if not keys_dir.exists():
        parent = _existing_parent(keys_dir)
        writable = os.access(parent, os.W_OK)
        yield Check(OK if writable else FAIL, name,
                    f"{keys_dir} does not exist yet; apply creates it (mode 0700)" if writable
                    else f"{keys_dir} cannot be created: {parent} is not writable")
        return
    if not keys_dir.is_dir():
        yield Check(FAIL, name, f"{keys_dir} is not a folder")
        return
    mode = stat.S_IMODE(keys_dir.stat().st_mode)
    try:
        with tempfile.NamedTemporaryFile(dir=keys_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        yield Check(FAIL, name, f"{keys_dir} is not writable ({exc.strerror})")
        return
    if mode & 0o077:
        yield Check(WARN, name, f"{keys_dir} is readable by others (mode {mode:o}); run: "
                                f"chmod 700 {keys_dir}")
        return
    accounts = [p.name for p in keys_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    yield Check(OK, name, f"{keys_dir} writable, mode {mode:o}, {len(accounts)} folder(s)")


def _existing_parent(path: Path) -> Path:
    for parent in (path, *path.absolute().parents):
        if parent.exists():
            return parent
    return Path("/")
