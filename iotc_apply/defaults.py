"""Default paths, kept apart so the command line can name them without importing the
modules that use them (the key store imports `cryptography`).
May import: nothing else of iotc_apply."""

from __future__ import annotations

from pathlib import Path

DEFAULT_KEYS_DIR = Path(".iotc") / "keys"
DEFAULT_EMULATOR_DB = Path(".iotc") / "emulator.db"
