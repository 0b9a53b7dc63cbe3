"""The emulated IoTConnect account: the services' rules wired together over one store.

Each service's rules live in their own module (moto's `models.py` per service): `auth`,
`accounts` (users and entities), `templates` (templates, attributes, commands), `devices`,
`firmware` (firmware, upgrades, OTA) and `files`. This module builds them over one `Context`,
hands each the small interfaces it needs of the others, and seeds and resets the account.
Module-wide assumptions: natural keys (template code, DUID, firmware name, attribute and
command names) are unique case-insensitively (ASSUMPTION: api.md 9.9 leaves it open); the
`error[].param` codes other than the three observed ones (DeviceTemplateNameAlreadyExists,
UniqueIdAlreadyExists, TemplateAlreadyAttachedWithFirmware) are ASSUMPTION: invented in the
same style; request validation failures answer 412 (AE swaggers: "a precondition failed").
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from .accounts import Accounts
from .auth import Auth
from .core import Account, Context, Limits
from .devices import Devices
from .files import Files
from .firmware import Firmware
from .store import Store
from .templates import Templates


class EmulatorState:
    """One IoTConnect company account, persisted in a `Store`, served by six rule sets."""

    def __init__(self, store: Store, account: Account | None = None,
                 limits: Limits | None = None, clock: Callable[[], float] = time.time) -> None:
        self.ctx = Context(store, account, limits, clock)
        self.accounts = Accounts(self.ctx)
        self.auth = Auth(self.ctx, self.accounts)
        self.templates = Templates(self.ctx)
        self.files = Files(self.ctx)
        self.devices = Devices(self.ctx, self.templates, self.accounts)
        self.firmware = Firmware(self.ctx, self.templates, self.devices, self.files,
                                 self.accounts)
        self.templates.bind(self.devices, self.firmware)
        with store.transaction():
            if store.meta("seeded") is None:
                self._seed()

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def account(self) -> Account:
        return self.ctx.account

    @account.setter
    def account(self, value: Account) -> None:
        self.ctx.account = value

    @property
    def limits(self) -> Limits:
        return self.ctx.limits

    def reset(self) -> None:
        """Forget everything and seed again (the control endpoint)."""
        with self.store.transaction():
            self.store.wipe()
            self._seed()

    def _seed(self) -> None:
        self.store.set_meta("seeded", "1")
        self.store.set_meta("jwt_secret", secrets.token_hex(32))
        self.ctx.forget_secret()
        for key in ("company_guid", "solution_guid", "role_guid"):
            self.store.set_meta(key, self.ctx.new_guid())
        self.accounts.seed()
        self.templates.seed()
