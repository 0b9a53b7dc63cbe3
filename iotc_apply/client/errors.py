"""The one exception tree at the client boundary.

    ApiError                       anything the IoTConnect API layer raises
    ├── ConfigError                no login, bad discovery answer, missing settings
    ├── TransportError             no usable HTTP answer: connection, timeout, non-JSON body
    └── StatusError                the service answered with an error status
        ├── BadRequest             400
        ├── Unauthorized           401 (after one refresh-and-retry)
        ├── Forbidden              403
        ├── NotFound               404
        ├── Conflict               409 (duplicates, rule violations, and most "not found")
        ├── PreconditionFailed     412
        ├── RateLimited            429 (after retries)
        └── ServerError            5xx (after retries, for requests that may repeat)

Every error carries the request (method and path, never headers or bodies) and, for status
errors, the HTTP status, the server's message and its `error[].param` codes, and says all of
it in its message. `ambiguous` is true when a request that changes state may or may not have
taken effect (a POST that met a transport error or a 5xx): the caller must read back by
natural key before trying again. Anything else escaping the client is a bug.

What "absent" means is decided per operation, as the official client decides it, never by
the wording of a message: a lookup (GET of one object or of a child list) answering 404 or
409 means absent (`ABSENT`; PKG lib/template.py:145-162, lib/device.py:133-153,
lib/entity.py:49, lib/command.py:28, lib/storage.py:60); a 204 or an empty body on a list
means empty; a 409 on a create means "exists or conflicts" and is read back by natural key;
a DELETE's 404/409 counts as "already gone" only when a lookup by natural key confirms it.
May import: nothing else of iotc_apply.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of every client-layer error."""

    def __init__(self, message: str, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.ambiguous = False

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}".strip()


class ConfigError(ApiError):
    """The client cannot start: no credentials, no login, discovery failed."""


class TransportError(ApiError):
    """No usable HTTP answer (connection refused or dropped, timeout, garbled body)."""

    def __init__(self, message: str, method: str = "", path: str = "",
                 ambiguous: bool = False) -> None:
        super().__init__(f"{method} {path}: {message}" if method else message, method, path)
        self.ambiguous = ambiguous


class StatusError(ApiError):
    """The service refused: carries status, server message and error codes."""

    status = 0

    def __init__(self, method: str, path: str, status: int, server_message: str,
                 codes: tuple[str, ...] = (), ambiguous: bool = False) -> None:
        detail = server_message or "no message"
        if codes:
            detail += f" [{', '.join(codes)}]"
        super().__init__(f"{method} {path}: HTTP {status}: {detail}", method, path)
        self.status = status
        self.server_message = server_message
        self.codes = codes
        self.ambiguous = ambiguous


class BadRequest(StatusError):
    status = 400


class Unauthorized(StatusError):
    status = 401


class Forbidden(StatusError):
    status = 403


class NotFound(StatusError):
    status = 404


class UnsupportedCall(ApiError):
    """The service seems to lack a call iotc-apply knows only from documentation."""


class Conflict(StatusError):
    status = 409


class PreconditionFailed(StatusError):
    status = 412


class RateLimited(StatusError):
    status = 429


class ServerError(StatusError):
    status = 500


_BY_STATUS: dict[int, type[StatusError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    412: PreconditionFailed, 429: RateLimited,
}


# What a lookup's refusal means: the object is not there (404 on some resources, 409 on
# most; PKG catches NotFoundResponseError or ConflictResponseError per resource).
ABSENT: tuple[type[StatusError], ...] = (NotFound, Conflict)


def status_error(method: str, path: str, status: int, message: str,
                 codes: tuple[str, ...]) -> StatusError:
    """The subclass for a status; the message never changes which one."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else StatusError)
    ambiguous = status >= 500 and method == "POST"
    return cls(method, path, status, message, codes, ambiguous=ambiguous)
