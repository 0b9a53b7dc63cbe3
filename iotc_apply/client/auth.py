"""Discovery and the token: where each service lives, login, refresh, and the 401 flow.

Discovery answers the service base URLs for a solution key, environment and platform; a
stored login carries them, so a run with a login asks nothing. Login is the vendor's
basic-token handshake; tokens (never the password) go to the token store. A token is
refreshed before it expires and, with proactive refresh on, after an hour; a 401 refreshes
it once and repeats the request (`flow`, a generator as httpx's `Auth.auth_flow`). A refused
login is never tried twice: each wrong password counts towards the account's lockout.
May import: `model`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import urllib.parse
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..model import Identity
from .envelope import Envelope, moved, parse
from .errors import ConfigError, Forbidden, StatusError, Unauthorized
from .redact import redact_url, remember
from .retry import LOOPBACK, Retrying
from .settings import Login, Settings, TokenStore

if TYPE_CHECKING:
    import requests  # the annotations only: importing it costs ~90 ms a command

BASE_URL_KEYS = {"auth": "authBaseUrl", "user": "userBaseUrl", "device": "deviceBaseUrl",
                 "firmware": "firmwareBaseUrl", "file": "fileBaseUrl"}
PROACTIVE_REFRESH_AFTER = 3600.0

Headers = dict[str, str]


class TokenAuth:
    """The account's base URLs and access token, shared by every thread of a session."""

    def __init__(self, settings: Settings, store: TokenStore, send: Retrying,
                 clock: Any = time.time) -> None:
        self.settings = settings
        self.store = store
        self._send = send
        self._clock = clock
        self._lock = threading.RLock()
        self._login: Login | None = None
        self._refused: ConfigError | None = None
        self._urls: dict[str, str] | None = None

    # -- discovery -----------------------------------------------------------------------------

    def base_urls(self) -> dict[str, str]:
        """The service base URLs, from the stored login or from discovery (cached)."""
        with self._lock:
            if self._urls is None:
                stored = self._stored_login()
                self._urls = stored.base_urls if stored else self._discover(self.settings)
            return self._urls

    def discover(self) -> dict[str, str]:
        """Discovery asked now, not the stored login's copy: is the service there, for this
        solution key, environment and platform (the stored login's when none is set)?
        Changes nothing (`iotc doctor`)."""
        with self._lock:
            stored = self._stored_login()
            settings = self.settings
            if not settings.skey and stored is not None:
                settings = dataclasses.replace(settings, skey=stored.skey, env=stored.env,
                                               pf=stored.pf)
            return self._discover(settings)

    def _discover(self, s: Settings) -> dict[str, str]:
        if not s.skey:
            raise ConfigError("no solution key: set IOTC_SKEY (or --skey) or run 'iotc login'")
        _check_discovery_url(s.discovery_url)
        url = f"{s.discovery_url.rstrip('/')}/solutionkey/{s.skey}/env/{s.env}"
        shown = f"discovery for pf={s.pf} env={s.env}"
        resp = self._send.send("GET", url, shown,
                               {"params": {"version": s.api_version, "pf": s.pf}})
        if 300 <= resp.status_code < 400:
            raise ConfigError(f"{shown} failed: HTTP {resp.status_code}, "
                              f"{moved(resp, hide=s.skey)}; if that place is the service, set "
                              "IOTC_DISCOVERY_URL to it")
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

    @property
    def current(self) -> Login | None:
        """The login in use (stored or made in this process), if any."""
        with self._lock:
            return self._stored_login()

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
            self._urls = self._discover(self.settings)
            basic = self._auth_call("GET", "/Auth/basic-token", {}).body.get("data")
            headers = {"Authorization": f"Basic {basic}",
                       "Solution-key": self.settings.skey or ""}
            try:
                body = self._auth_call("POST", "/Auth/login",
                                       {"json": {"username": user, "password": secret},
                                        "headers": headers}).body
            except (Unauthorized, Forbidden) as exc:
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

    def refresh(self) -> float:
        """Refresh the access token now; seconds the new one is valid (`iotc doctor`)."""
        with self._lock:
            login = self._refresh(self._current_login())
            return login.token_expiry - self._clock()

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

    def flow(self) -> Generator[Headers, requests.Response, None]:
        """The Authorization header for a request; sent the answer, the header to repeat it
        with once after a 401 (the token refreshed), then nothing more."""
        token = self.access_token()
        answer = yield {"Authorization": f"Bearer {token}"}
        if answer.status_code == 401:
            yield {"Authorization": f"Bearer {self.access_token(force_refresh_of=token)}"}

    def access_token(self, force_refresh_of: str | None = None) -> str:
        with self._lock:
            login = self._current_login()
            now = self._clock()
            stale = login.token_expiry <= now + 30 or (
                self.settings.token_refresh and login.token_time + PROACTIVE_REFRESH_AFTER < now)
            if stale or force_refresh_of == login.access_token:
                login = self._refresh(login)
            return login.access_token

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
        resp = self._send.send(method, url, path, {**kwargs, "headers": headers})
        return parse(resp, method, path, (200,))

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


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the client only reads its own token's claims)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _check_discovery_url(url: str) -> None:
    """https, or plain http to this machine only (the emulator): credentials never travel
    in clear text, and a URL without a scheme is a one-line error, not a library's."""
    parsed = urllib.parse.urlsplit(url)
    loopback = parsed.hostname in LOOPBACK
    if parsed.scheme == "https" and parsed.hostname or parsed.scheme == "http" and loopback:
        return
    raise ConfigError(f"IOTC_DISCOVERY_URL must be an https:// URL (http:// only to this "
                      f"machine), not {redact_url(url)!r}")
