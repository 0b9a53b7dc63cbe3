"""The resource client layer over the IoTConnect REST API.

`IoTConnect` bundles one `ApiSession` (discovery, auth, retries, paging, tracing) with a
typed client per API area; every read returns `iotc_apply.model` values and every failure is
an `ApiError` (see `errors.py` for the tree). May import: nothing else of iotc_apply.

The package imports its parts when they are first used (PEP 562), and requests with urllib3
(a tenth of a second) only for what the thin path does not carry (files, downloads, proxies)
or to raise their errors: `iotc validate` and `iotc --help` never talk to the API, and a
plan's calls all take the thin path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ApiError, ConfigError

if TYPE_CHECKING:
    from .session import ApiSession
    from .settings import Settings, TokenStore

FIRMWARE_MODULE = "firmware"  # the file service's module type of firmware upgrade files
_LAZY = {"ApiSession": "session", "Settings": "settings", "TokenStore": "settings"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class IoTConnect:
    """Everything the reconciler may ask of one account."""

    def __init__(self, session: ApiSession) -> None:
        from .devices import DevicesClient, EntitiesClient, UsersClient
        from .firmware import FilesClient, FirmwareClient
        from .templates import TemplatesClient

        self.session = session
        self.templates = TemplatesClient(session)
        self.devices = DevicesClient(session)
        self.entities = EntitiesClient(session)
        self.users = UsersClient(session)
        self.firmware = FirmwareClient(session)
        self.files = FilesClient(session)

    @classmethod
    def connect(cls, settings: Settings, store: TokenStore | None = None,
                pool_size: int = 32) -> IoTConnect:
        from .session import ApiSession

        return cls(ApiSession(settings, store, pool_size=pool_size))


__all__ = ["FIRMWARE_MODULE", "ApiError", "ApiSession", "ConfigError", "IoTConnect",
           "Settings", "TokenStore"]
