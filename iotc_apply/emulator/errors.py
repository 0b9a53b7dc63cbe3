"""Errors the emulated IoTConnect service answers with.

One class per kind of refusal, each knowing its HTTP status and how it is enveloped, so the
state module can raise them without knowing about Flask, and the routes turn them into the
exact JSON the real service sends. Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

from typing import Any


class EmulatorError(Exception):
    """A refusal with an HTTP status, a message and optional `error[].param` codes."""

    status = 500

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        """The `ErrorsResponse` envelope of the device/firmware/file/user services."""
        errors = [{"param": self.param, "message": self.message}] if self.param else []
        return {"status": self.status, "message": self.message, "error": errors}


class Conflict(EmulatorError):
    """409: the service's catch-all for duplicates, rule violations and most "not found"."""

    status = 409


class NotFound(EmulatorError):
    """404: "not found" on the resources whose lookups answer 404 (template by GUID, ...)."""

    status = 404


class PreconditionFailed(EmulatorError):
    """412: a request parameter failed validation (bad sortBy, window too wide, ...)."""

    status = 412


class Unauthorized(EmulatorError):
    """401: missing, malformed, expired or foreign token; wrong credentials."""

    status = 401

    def body(self) -> dict[str, Any]:
        # The auth service's ErrorResponse carries `error` and `data` as objects.
        return {"status": self.status, "message": self.message, "error": {}, "data": {}}


class ServerError(EmulatorError):
    """500: what the real service answers to some invalid input (e.g. pageNumber < 1)."""

    status = 500
