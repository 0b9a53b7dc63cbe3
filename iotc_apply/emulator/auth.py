"""The auth service's rules: basic token, login, rotating refresh tokens, bearer checks.

Plain Python, no Flask. It asks the user service (`UserDirectory`) for users; tokens are
HS256 JWTs with the claim names of captured real tokens (api.md 2.6).
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import string
from typing import Any, Protocol

from . import tokens
from .core import Context
from .errors import Conflict, NotFound, Unauthorized
from .store import Record


class UserDirectory(Protocol):
    """What auth needs from the user service."""

    def user_by_email(self, email: str) -> Record | None: ...

    def user(self, guid: str) -> Record: ...


class Auth:
    """Issues and checks the tokens of one account."""

    def __init__(self, ctx: Context, users: UserDirectory) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.users = users
        # token and signing key -> its claims, once the signature was checked: a client
        # sends one token thousands of times, and checking it (HMAC, two base64 decodes, a
        # JSON parse) was ~5 % of a `POST /Device`; expiry is still checked every time
        self._verified: dict[tuple[str, bytes], dict[str, Any]] = {}

    def basic_token(self) -> str:
        """`GET /Auth/basic-token`: base64 of `<instance>:<100 lower-case letters>`.

        Source: ALV Fixtures.kt (captured live answer), PKG lib/credentials.py.
        """
        random_part = "".join(random.choices(string.ascii_lowercase, k=100))
        token = base64.b64encode(f"{self.ctx.account.instance}:{random_part}".encode()).decode()
        with self.store.transaction():
            self.store.insert("basictoken",
                              {"guid": hashlib.sha256(token.encode()).hexdigest().upper()})
        return token

    def login(self, authorization: str | None, solution_key: str | None,
              username: Any, password: Any) -> dict[str, Any]:
        """`POST /Auth/login`; wrong credentials or solution are a 401.

        Source: AE-orig auth swagger `/Auth/login` (401 ErrorResponse), PKG lib/credentials.py.
        ASSUMPTION: the `Basic ` prefix is mandatory, the basic token must be one this service
        issued and is good for one login attempt (api.md 9.2 leaves all three open).
        """
        if not authorization or not authorization.startswith("Basic "):
            raise Unauthorized("Authorization header with a Basic token is required.")
        issued = hashlib.sha256(authorization[6:].strip().encode()).hexdigest()
        with self.store.transaction():
            if self.store.get("basictoken", issued) is None:
                raise Unauthorized("Invalid basic token.")
            self.store.delete("basictoken", issued.upper())
            if solution_key != self.ctx.account.solution_key:
                raise Unauthorized("User is not authorized for the given solution.")
            if not isinstance(username, str) or not isinstance(password, str) \
                    or not username or not password:
                raise Unauthorized("Username and password are required.")
            user = self.users.user_by_email(username)
            digest = hashlib.sha256(password.encode()).hexdigest()
            if user is None or not secrets.compare_digest(user["passwordHash"], digest):
                raise Unauthorized("Invalid username or password.")
            return self._issue(user, from_refresh=False)

    def refresh(self, refresh_token: Any) -> dict[str, Any]:
        """`POST /Auth/refresh-token`: the presented token is spent, a new pair is issued.

        Source: AE-orig auth swagger `/Auth/refresh-token` (409 on an invalid token).
        ASSUMPTION: refresh tokens rotate and a spent one is refused (api.md 9.3).
        """
        if not isinstance(refresh_token, str) or not refresh_token:
            raise Conflict("Refresh token is required.", param="refreshtoken")
        key = hashlib.sha256(refresh_token.encode()).hexdigest().upper()
        with self.store.transaction():
            record = self.store.get("refreshtoken", key)
            if record is None:
                raise Conflict("Invalid refresh token.", param="InvalidRefreshToken")
            self.store.delete("refreshtoken", key)
            try:
                user = self.users.user(record["userGuid"])
            except NotFound as exc:
                raise Conflict("Invalid refresh token.", param="InvalidRefreshToken") from exc
            return self._issue(user, from_refresh=True)

    def _issue(self, user: Record, from_refresh: bool) -> dict[str, Any]:
        acc = self.ctx.account
        claims_user: dict[str, Any] = {
            "id": user["guid"], "companyId": self.store.meta("company_guid"),
            "roleId": user["roleGuid"], "roleName": user["roleName"], "cpId": acc.cpid,
            "entityGuid": user["entityGuid"], "solutionGuid": self.store.meta("solution_guid"),
            "solutionKey": acc.solution_key, "ps": False, "userId": user["userId"],
        }
        if not from_refresh:
            # Real tokens obtained through refresh lack these two claims (PKG accesstoken.py).
            claims_user["reviewStatus"] = "Approved"
            claims_user["isCpidOptional"] = acc.dedicated
        audience = f"{acc.instance}.iotconnect.io"
        lifetime = self.ctx.limits.token_lifetime
        claims = {"exp": int(self.ctx.clock()) + lifetime, "iss": audience, "aud": audience,
                  "user": claims_user}
        refresh = "".join(random.choices(string.ascii_lowercase, k=50))
        key = hashlib.sha256(refresh.encode()).hexdigest().upper()
        self.store.insert("refreshtoken", {"guid": key, "userGuid": user["guid"]})
        return {"token_type": "bearer", "access_token": tokens.sign(claims, self.ctx.secret()),
                "expires_in": lifetime, "refresh_token": refresh, "status": 200}

    def authenticate(self, authorization: str | None) -> dict[str, Any]:
        """The claims of a valid Bearer token, or 401 on every non-auth operation.

        Source: AE swaggers (401 on every operation), PKG lib/apirequest.py get_auth_headers.
        """
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("Authorization has been denied for this request.")
        token, secret, now = authorization[7:].strip(), self.ctx.secret(), self.ctx.clock()
        claims = self._verified.get((token, secret))
        if claims is None or float(claims.get("exp", 0)) <= now:
            claims = tokens.verify(token, secret, now)
            if claims is None:
                raise Unauthorized("Authorization has been denied for this request.")
            if len(self._verified) >= 1024:
                self._verified.clear()
            self._verified[(token, secret)] = claims
        return claims
