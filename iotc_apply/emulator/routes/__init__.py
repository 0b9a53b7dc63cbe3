"""Route handlers, one module per rules module, mounted per IoTConnect service.

Every handler is parse -> rules -> views -> envelope. Paths, casing and status codes follow
`shared/iotconnect-api.md` sections 2-4 and 8. `SERVICES` lists the base paths discovery
hands out; `ROUTES` says which route modules each of them serves.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint

from . import accounts, auth, devices, files, firmware, templates

SERVICES = ("auth", "user", "device", "firmware", "file", "telemetry", "event", "master")

ROUTES: dict[str, tuple[Callable[[Blueprint], None], ...]] = {
    "auth": (auth.register,),
    "user": (accounts.register,),
    "device": (templates.register, devices.register),
    "firmware": (firmware.register,),
    "file": (files.register,),
    "telemetry": (devices.register_telemetry,),
}


def register_routes(service: str, bp: Blueprint) -> None:
    for register in ROUTES.get(service, ()):
        register(bp)
