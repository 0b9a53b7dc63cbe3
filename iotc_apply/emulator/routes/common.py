"""What every route module shares: the emulator of this app, envelopes, request parsing.

Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..errors import PreconditionFailed
from ..state import EmulatorState

View = Callable[..., Response]
EXTENSION = "iotc_emulator"  # where create_app keeps the app's `Emulator`


def emu() -> Any:
    """The app's `Emulator` (state + traffic + signed file URLs)."""
    return current_app.extensions[EXTENSION]


def state() -> EmulatorState:
    return emu().state


def ok(data: Any, count: int | None = None, message: str = "Success",
       extra: dict[str, Any] | None = None) -> Response:
    """The success envelope: `data`, `status`, `message`, `count` (+ endpoint extras)."""
    body: dict[str, Any] = {"data": data, "status": 200, "message": message, "count": count}
    body.update(extra or {})
    return jsonify(body)


def no_content() -> Response:
    """204 with an empty body: the service's answer to an empty list."""
    return Response(status=204)


def body_json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise PreconditionFailed("The request body must be a JSON object.", param="body")
    return data


def params() -> dict[str, Any]:
    return request.args.to_dict()


def route(bp: Blueprint, rule: str, methods: list[str]) -> Callable[[View], View]:
    """Register a handler on a service's blueprint under its function name."""
    def wrap(fn: View) -> View:
        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=fn, methods=methods)
        return fn
    return wrap
