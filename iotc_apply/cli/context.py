"""What every command gets besides its own flags: the environment, read once into typed
values, and the collaborators made from it (the API client, variable inputs, the key policy,
plan requests). Commands never read `os.environ` themselves.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..client.redact import remember

if TYPE_CHECKING:
    from ..client import IoTConnect
    from ..emulator import EmulatorServer
    from ..keystore import Issuer
    from ..manifest.variables import Given
    from ..operations import KeyPolicy, PlanRequest

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130
POOL = 32  # connections kept, and requests in flight, at the least
TRUE = ("1", "true", "yes")


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit 1."""


class Interrupted(Exception):
    """Ctrl-C where nothing had started: said where it was raised; exit 130."""


@dataclass(frozen=True)
class Environment:
    """The process environment, taken once when the command starts."""

    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> Environment:
        return cls(dict(os.environ))

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def flag(self, name: str) -> bool:
        return self.values.get(name, "").strip().lower() in TRUE

    def secret(self, name: str) -> str | None:
        """A secret; unset is None, but set and empty is an error: an empty IOTC_PLAN_KEY
        once turned plan signatures off without a word."""
        value = self.values.get(name)
        if value is None:
            return None
        if not value.strip():
            raise UsageError(f"{name} is set but empty; unset it or give it the secret")
        remember(value)
        return value

    def attest_key(self) -> bytes | None:
        secret = self.secret("IOTC_KEYS_ATTEST_KEY") or self.secret("IOTC_PLAN_KEY")
        return secret.encode() if secret else None

    def variables(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k.startswith("IOTC_VAR_")}

    @property
    def in_ci(self) -> bool:
        return self.values.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Login:
    """Account flags of `login` (the other commands take them from the environment)."""

    user: str | None = None
    skey: str | None = None
    env: str | None = None
    pf: str | None = None


@dataclass(frozen=True)
class Invocation:
    """One run of the command line: its environment, the embedded emulator's state file
    (`--emulator`), and when it started."""

    env: Environment
    emulator_db: Path | None
    started: float

    @contextmanager
    def connect(self, login: Login | None = None,
                parallelism: int = POOL) -> Iterator[IoTConnect]:
        """An API client: to the real service (flags, environment, stored login) or to an
        in-process emulator whose state lives in a SQLite file (`--emulator`). Its
        connection pool and throttle hold `parallelism` requests (at least POOL: listings
        read pages of several templates at once)."""
        pool = max(POOL, parallelism)
        from ..client import IoTConnect
        from ..client.session import ApiSession
        from ..client.settings import Settings, TokenStore

        if self.emulator_db is None:
            given = login or Login()
            settings = Settings.from_env(self.env.values, skey=given.skey, env=given.env,
                                         pf=given.pf, username=given.user)
            yield IoTConnect(ApiSession(settings, TokenStore.for_settings(settings),
                                        pool_size=pool))
            return
        with self._embedded_emulator() as server:
            acc = server.emulator.state.account
            settings = Settings.from_env(self.env.values, discovery_url=server.discovery_url,
                                         skey=acc.solution_key, env=acc.env, pf=acc.pf,
                                         username=acc.user_email, password=acc.user_password)
            yield IoTConnect(ApiSession(settings, TokenStore(None), pool_size=pool))

    def _embedded_emulator(self) -> EmulatorServer:
        """The in-process emulator over a SQLite file; a path that cannot hold one is a
        one-line error."""
        import sqlite3

        from ..emulator import EmulatorServer

        db = self.emulator_db
        assert db is not None
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            return EmulatorServer(db=str(db))
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--emulator={db}: cannot keep the emulator's state there "
                             f"({reason})") from None


def variable_inputs(inv: Invocation, var: list[str] | None,
                    var_file: list[str] | None) -> Given:
    """Variable values from --var, --var-file and IOTC_VAR_*."""
    from ..manifest.variables import Given, parse_flags

    try:
        flags = parse_flags(var or [])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Given(flags, tuple(var_file or ()), inv.env.variables())


def plan_request(inv: Invocation, args: argparse.Namespace, destroy: bool,
                 prune: bool = True, expiry_warning: int = 30,
                 ca_cert: str | None = None, allow_deletes: int | None = None) -> PlanRequest:
    """The plan arguments shared by plan, apply and destroy (`args.add_plan_arguments`)."""
    from ..model import Address
    from ..operations import PlanRequest

    try:
        targets = tuple(Address.parse(t) for t in args.target or ())
        excludes = tuple(Address.parse(t) for t in args.exclude or ())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return PlanRequest(paths=tuple(args.paths), inputs=variable_inputs(inv, args.var,
                                                                       args.var_file),
                       destroy=destroy, prune=prune, targets=targets, excludes=excludes,
                       parallelism=args.parallelism, expiry_warning=expiry_warning,
                       ca=bool(ca_cert or inv.env.get("IOTC_CA_CERT")),
                       allow_deletes=allow_deletes,
                       allow_online=tuple(args.allow_online or ()),
                       outside_window=args.outside_window)


@dataclass(frozen=True)
class Certificates:
    """The certificate flags of apply: days, and the CA that signs (also IOTC_CA_*)."""

    days: int = 3650
    ca_cert: str | None = None
    ca_key: str | None = None


def key_policy(inv: Invocation, keys_dir: str, recipients: list[str] | None = None,
               require_sealed: bool = False,
               certificates: Certificates | None = None) -> KeyPolicy:
    """The key store settings from flags and the environment: recipients from
    --keys-recipient and IOTC_KEYS_RECIPIENTS, the attestation secret, sealed-required from
    --require-sealed or IOTC_KEYS_REQUIRE_SEALED, and the issuer (--ca-cert/--ca-key or
    IOTC_CA_CERT/IOTC_CA_KEY, passphrase from IOTC_CA_KEY_PASSPHRASE; read, never copied)."""
    from ..operations import KeyPolicy

    env = inv.env
    given = list(recipients or []) + (env.get("IOTC_KEYS_RECIPIENTS") or "").replace(
        ",", " ").split()
    certs = certificates or Certificates()
    cert = certs.ca_cert or env.get("IOTC_CA_CERT")
    key = certs.ca_key or env.get("IOTC_CA_KEY")
    passphrase = env.get("IOTC_CA_KEY_PASSPHRASE")

    def issuer() -> Issuer:
        from ..keystore import KeyStoreError, load_issuer

        remember(passphrase)
        try:
            return load_issuer(certs.days, Path(cert) if cert else None,
                               Path(key) if key else None, passphrase)
        except KeyStoreError as exc:
            raise UsageError(str(exc)) from None
    return KeyPolicy(Path(keys_dir), tuple(given), env.attest_key(),
                     require_sealed or env.flag("IOTC_KEYS_REQUIRE_SEALED"), env.in_ci, issuer)
