"""Errors the emulated IoTConnect service answers with.

One class per kind of refusal, each knowing its HTTP status and how it is enveloped, so the
rules can raise them without knowing about Flask, and the routes turn them into the exact JSON
the real service sends. Messages use the vendor's voice: the swaggers word "not found" 409s
as "The device doesn't exist" (AE device swagger, 409 descriptions). `error[].param` carries
a machine code only where a source shows one (`OBSERVED_CODES`, from KLIKA
common/constants.py); on 412 refusals it names the offending request field, which is what
the ErrorsResponse schema's `param` is. Every other code a rule passes is kept for the
emulator's own reading and never sent. Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

from typing import Any

OBSERVED_CODES = frozenset({"DeviceTemplateNameAlreadyExists", "UniqueIdAlreadyExists",
                            "TemplateAlreadyAttachedWithFirmware"})


class EmulatorError(Exception):
    """A refusal with an HTTP status, a message and an optional `error[].param` code.

    `absent` marks the refusals that mean "no such object", so the wording knob can re-word
    every one of them (tests prove the client never reads the words).
    """

    status = 500

    def __init__(self, message: str, param: str | None = None, absent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.absent = absent

    def wire_param(self) -> str | None:
        if self.param is None:
            return None
        return self.param if self.status == 412 or self.param in OBSERVED_CODES else None

    def body(self) -> dict[str, Any]:
        """The `ErrorsResponse` envelope of the device/firmware/file/user services."""
        param = self.wire_param()
        errors = [{"param": param, "message": self.message}] if param else []
        return {"status": self.status, "message": self.message, "error": errors}


class BadRequest(EmulatorError):
    """400: a body the service cannot read at all (wrong JSON types, too large)."""

    status = 400


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


def absent(what: str, status: type[EmulatorError] = Conflict) -> EmulatorError:
    """"No such object", worded as the swaggers' 409 descriptions word it."""
    return status(f"The {what} doesn't exist.", absent=True)
