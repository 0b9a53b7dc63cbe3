"""The one exception tree at the client boundary.

    ApiError                       anything the IoTConnect API layer raises
    ├── ConfigError                no login, bad discovery answer, missing settings
    ├── TransportError             no usable HTTP answer: connection, timeout, non-JSON body
    └── StatusError                the service answered with an error status
        ├── BadRequest             400
        ├── Unauthorized           401 (after one refresh-and-retry)
        ├── Forbidden              403
        ├── NotFound               404, and 409 whose error says "not found"
        ├── Conflict               409 (duplicates, rule violations)
        ├── PreconditionFailed     412
        ├── RateLimited            429 (after retries)
        └── ServerError            5xx (after retries, for requests that may repeat)

Every error carries the request (method and path, never headers or bodies) and, for status
errors, the HTTP status, the server's message and its `error[].param` codes, and says all of
it in its message. `ambiguous` is true when a request that changes state may or may not have
taken effect (a POST that met a transport error or a 5xx): the caller must read back by
natural key before trying again. Anything else escaping the client is a bug.
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


def status_error(method: str, path: str, status: int, message: str,
                 codes: tuple[str, ...]) -> StatusError:
    """The right subclass for a status; a 409 that says "not found" is a NotFound."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else StatusError)
    if status == 409 and _says_not_found(message, codes):
        cls = NotFound
    ambiguous = status >= 500 and method == "POST"
    return cls(method, path, status, message, codes, ambiguous=ambiguous)


def _says_not_found(message: str, codes: tuple[str, ...]) -> bool:
    text = " ".join((message, *codes)).lower().replace(" ", "")
    return "notfound" in text or "doesnotexist" in text
