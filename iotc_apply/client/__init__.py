"""The resource client layer over the IoTConnect REST API.

`IoTConnect` bundles one `ApiSession` (discovery, auth, retries, paging, tracing) with a
typed client per API area; every read returns `iotc_apply.model` values and every failure is
an `ApiError` (see `errors.py` for the tree). Imports `model` only from the rest of iotc_apply.
"""

from __future__ import annotations

from .devices import DevicesClient, EntitiesClient, UsersClient
from .errors import ApiError, ConfigError
from .firmware import FIRMWARE_MODULE, FilesClient, FirmwareClient
from .session import ApiSession
from .settings import Settings, TokenStore
from .templates import TemplatesClient


class IoTConnect:
    """Everything the reconciler may ask of one account."""

    def __init__(self, session: ApiSession) -> None:
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
        return cls(ApiSession(settings, store, pool_size=pool_size))


__all__ = ["FIRMWARE_MODULE", "ApiError", "ApiSession", "ConfigError", "IoTConnect",
           "Settings", "TokenStore"]
