"""A faithful offline IoTConnect: Flask routes over plain-Python rules over SQLite.

Emulated (see `shared/iotconnect-api.md`): discovery; auth (basic token, login, rotating
refresh, HS256 JWTs); device templates (quick create, list, get by code/GUID, update, delete,
data types), template attributes and commands (list, create, update, delete, send);
devices (list, get by GUID/DUID, create, update, status, delete); entities (list, lookup,
get, create); users (list, get, availability); firmware (list, get, create, update,
deprecate); upgrades (list, get, create, update, publish, delete); files (upload, list,
delete, signed download); OTA push; telemetry reads (always empty).
Ignored: rules, dashboards, certificates (CA), gateways and child devices, acquire/release,
twins, notifications.

Nothing else in iotc_apply imports this package except the CLI and the tests, and it imports
nothing from iotc_apply.
"""

from .app import create_app
from .knobs import FaultRule, Knobs
from .server import EmulatorServer
from .state import Account, Limits

__all__ = ["Account", "EmulatorServer", "FaultRule", "Knobs", "Limits", "create_app"]
