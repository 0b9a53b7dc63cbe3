"""A faithful offline IoTConnect: Flask routes over plain-Python rules over SQLite.

Cut as moto cuts a service: per IoTConnect service a rules module (plain Python, no Flask;
every rule names its endpoint and its source, `tests/test_emulator_sources.py` checks it) and
a thin route module under `routes/`, sharing the store (`store.py`), the error tree
(`errors.py`), the wire shapes (`views.py`) and the context (`core.py`). Cross-service rules
live where the refusing operation lives and ask the other service through a small interface.

| service (base URL) | rules module | routes module | endpoints | assumptions |
| --- | --- | --- | --- | --- |
| auth | `auth.py` | `routes/auth.py` | 3 | 2 |
| user (entities, users) | `accounts.py` | `routes/accounts.py` | 7 | 1 |
| device: templates, attributes, commands | `templates.py` | `routes/templates.py` | 15 | 4 |
| device: devices; telemetry | `devices.py` | `routes/devices.py` | 11 | 4 |
| firmware (firmware, upgrades, OTA) | `firmware.py` | `routes/firmware.py` | 12 | 7 |
| file | `files.py` | `routes/files.py` | 3 | 1 |
| wiring, discovery, knobs, control | `state.py`, `app.py`, `knobs.py` | `app.py` | 2 | 3 |

Ignored: rules, dashboards, certificates (CA), gateways and child devices, acquire/release,
twins, notifications; telemetry reads are always empty.

Nothing else in iotc_apply imports this package except the CLI and the tests, and it imports
nothing from iotc_apply.
"""

from .app import create_app
from .core import Account, Limits
from .knobs import FaultRule, Knobs
from .server import EmulatorServer

__all__ = ["Account", "EmulatorServer", "FaultRule", "Knobs", "Limits", "create_app"]
