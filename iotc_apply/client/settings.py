"""Connection settings and the stored login (token cache).

Settings come from flags, then the environment (the official CLI's variables), then the
stored login; never from manifests, because the same manifests go to every account.
The token cache is one JSON file, mode 0600, written atomically, under the user's config
directory (`$IOTC_CONFIG_DIR`, else `$XDG_CONFIG_HOME/iotc-apply`, else
`~/.config/iotc-apply`). It holds tokens, never the password.
May import: `safefile`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..safefile import write_private
from .errors import ConfigError

DEFAULT_DISCOVERY = "https://discovery.iotconnect.io/api/uisdk"


@dataclass(frozen=True)
class Settings:
    """Where and as whom to connect; `password` is only ever held in memory."""

    discovery_url: str = DEFAULT_DISCOVERY
    skey: str | None = None
    env: str = "poc"
    pf: str = "aws"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    trace: bool = False
    token_refresh: bool = True
    max_retries: int = 5
    max_retry_after: float = 120.0  # seconds; a longer Retry-After is an error
    # the largest upgrade file a download may bring (1 GiB: the largest firmware the
    # vendor documents); a larger body is an error, never read into memory
    max_download_bytes: int = 1 << 30
    # how long to wait for a process the service runs after answering (publish), polling
    # every PROCESS_POLL seconds; past it the step says "still processing"
    process_wait: float = 300.0
    # a CA bundle to verify TLS with (REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE; None: certifi)
    ca_bundle: str | None = None
    config_dir: Path = field(default_factory=lambda: default_config_dir(os.environ))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Environment first, then explicit overrides (flags) that are not None."""
        base = cls(
            discovery_url=environ.get("IOTC_DISCOVERY_URL") or DEFAULT_DISCOVERY,
            skey=environ.get("IOTC_SKEY") or None,
            env=environ.get("IOTC_ENV") or "poc",
            pf=environ.get("IOTC_PF") or "aws",
            username=environ.get("IOTC_USER") or None,
            password=environ.get("IOTC_PASS") or None,
            trace=bool(environ.get("IOTC_API_TRACE")),
            token_refresh=not environ.get("IOTC_API_NO_TOKEN_REFRESH"),
            max_retry_after=_seconds(environ.get("IOTC_MAX_RETRY_AFTER"), 120.0),
            max_download_bytes=_bytes(environ.get("IOTC_MAX_DOWNLOAD_BYTES"), 1 << 30),
            process_wait=_wait(environ.get("IOTC_PROCESS_WAIT"), 300.0),
            config_dir=default_config_dir(environ),
            ca_bundle=environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or None,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def api_version(self) -> str:
        return "2.1" if self.pf == "aws" else "2"


def _seconds(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        raise ConfigError(f"IOTC_MAX_RETRY_AFTER={text!r}: expected seconds") from None


def _wait(text: str | None, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"IOTC_PROCESS_WAIT={text!r}: expected seconds")
    return value


def _bytes(text: str | None, default: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"IOTC_MAX_DOWNLOAD_BYTES={text!r}: expected a number of bytes")
    return value


def default_config_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("IOTC_CONFIG_DIR"):
        return Path(environ["IOTC_CONFIG_DIR"])
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "iotc-apply"


@dataclass
class Login:
    """A stored login: where it is valid, the base URLs and the tokens."""

    discovery_url: str
    skey: str
    env: str
    pf: str
    username: str
    base_urls: dict[str, str]
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_time: float
    token_expiry: float
    dedicated: bool | None = None

    def matches(self, settings: Settings) -> bool:
        """A stored login serves these settings only if they name the same account."""
        wanted = (settings.discovery_url, settings.skey, settings.env, settings.pf)
        return (settings.skey is None or wanted == (self.discovery_url, self.skey,
                                                    self.env, self.pf)) and (
            settings.username is None or settings.username == self.username)


class TokenStore:
    """The token cache file; `None` path keeps the login in memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def for_settings(cls, settings: Settings) -> TokenStore:
        return cls(settings.config_dir / "credentials.json")

    def load(self) -> Login | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Login(**data)
        except (OSError, ValueError, TypeError):
            return None  # a damaged cache is as good as none: the user logs in again

    def save(self, login: Login) -> None:
        if self.path is None:
            return
        try:
            write_private(self.path, json.dumps(asdict(login), indent=2).encode())
        except OSError as exc:
            raise ConfigError(f"cannot keep the login token in {self.path.parent}: "
                              f"{exc.strerror}; set IOTC_CONFIG_DIR to a folder you can "
                              "write") from None

    def clear(self) -> bool:
        if self.path is None or not self.path.exists():
            return False
        try:
            self.path.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot remove {self.path}: {exc.strerror}") from None
        return True
