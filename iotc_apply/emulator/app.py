"""The Flask application: discovery, per-service base paths, auth gate, knobs, control.

Each API area is mounted under its own base path, `/<service>/api/<version>`, exactly as the
discovery answer lists it, so a client that sends a device call to the firmware base URL gets
the 404 it would get from the real service. Route handlers stay thin (routes.py): parse,
call the state, shape with views, envelope. Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import threading
import time
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import http_date
from werkzeug.routing import Rule

from .core import Account, Limits
from .errors import BadRequest, Conflict, EmulatorError
from .knobs import FaultRule, Knobs, Traffic
from .routes import SERVICES, register_routes
from .routes.common import EXTENSION
from .state import EmulatorState
from .store import Store

API_VERSIONS = {"aws": "v2.1", "az": "v2"}
MAX_BODY_BYTES = 30_000_000
# The environ key under which the server puts a callable that closes the request's TCP
# connection (server.py); the app stays free of any one server's internals.
DROP_CONNECTION = "iotc.drop_connection"
# What rules raise when a request carries a value of a type they did not foresee.
UNREADABLE = (ValueError, TypeError, OverflowError, KeyError, RecursionError)


class Emulator:
    """What one app instance holds: the account state and the traffic knobs."""

    def __init__(self, state: EmulatorState, traffic: Traffic) -> None:
        self.state = state
        self.traffic = traffic
        self.unreadable: list[str] = []  # requests answered by `_unreadable`
        # Set when the server stops: latency and hang faults wait on it rather than sleep,
        # so stopping never waits out a request held for 30 s.
        self.stopping = threading.Event()

    def file_url(self, record: dict[str, Any]) -> str:
        """A signed, time-limited download URL, like the service's blob/S3 links."""
        expires = int(time.time()) + 3600
        sig = self._file_sig(record["guid"], expires)
        return f"{request.host_url}_files/{record['guid']}/{record['name']}?se={expires}&sig={sig}"

    def _file_sig(self, guid: str, expires: int) -> str:
        key = self.state.ctx.secret()
        return hmac.new(key, f"{guid}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def check_file_sig(self, guid: str, expires: str, sig: str) -> bool:
        if not (expires.isascii() and expires.isdigit()) or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._file_sig(guid.upper(), int(expires)), sig)


class _Rule(Rule):
    """werkzeug's rule with its URL builders compiled when first used, not when the rule is
    added. The emulator answers URLs and builds none from its rules, and compiling the 130
    builders (through `ast`) was 20 of the 26 ms an app took to make: every `--emulator`
    command paid it. A build still works: the first one compiles the real builder."""

    def _compile_builder(self, append_unknown: bool = True) -> Any:
        def build(rule: Rule, *args: Any, **kwargs: Any) -> Any:
            real = Rule._compile_builder(rule, append_unknown).__get__(rule, None)
            setattr(rule, "_build_unknown" if append_unknown else "_build", real)
            return real(*args, **kwargs)

        return build


def emulator() -> Emulator:
    return current_app.extensions[EXTENSION]


def create_app(db: str = ":memory:", account: Account | None = None,
               limits: Limits | None = None, knobs: Knobs | None = None) -> Flask:
    """A ready emulator; `db` is a SQLite path (state persists) or `:memory:`."""
    app = Flask("iotc_apply.emulator")
    app.url_rule_class = _Rule
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = EmulatorState(Store(db), account, limits)
    app.extensions[EXTENSION] = Emulator(state, Traffic(knobs or Knobs()))
    version = API_VERSIONS[state.account.pf]
    for service in SERVICES:
        bp = Blueprint(service, __name__, url_prefix=f"/{service}/api/{version}")
        register_routes(service, bp)
        bp.before_request(_gate)
        app.register_blueprint(bp)
    app.add_url_rule("/api/uisdk/solutionkey/<skey>/env/<env>", view_func=_discovery)
    app.add_url_rule("/_files/<guid>/<name>", view_func=_download)
    _register_control(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.register_error_handler(EmulatorError, _refusal)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    for kind in UNREADABLE:
        app.register_error_handler(kind, _unreadable)
    app.after_request(_after)
    return app


def _route_key() -> str:
    """`METHOD /rule` under the service's prefix: what traffic counts and knobs name. Made
    once per route and method (a few string operations and proxy reads per request, at
    thousands of requests a second)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    rule = req.url_rule
    memo = (req.method, rule.rule, rule.endpoint) if rule is not None else None
    known = _ROUTE_KEYS.get(memo)
    if known is not None:
        return known
    text = rule.rule if rule else req.path
    prefix = f"/{req.blueprint}/api/"
    if req.blueprint and text.startswith(prefix):
        text = text[len(prefix):].partition("/")[2]
        text = "/" + text
    key = f"{req.method} {text}"
    if memo is not None:
        _ROUTE_KEYS[memo] = key
    return key


# (method, rule, endpoint) -> route key; the same in every app, so shared
_ROUTE_KEYS: dict[tuple[str, str, str] | None, str] = {}


def _gate() -> Response | None:
    """Per service request: count, delay, throttle, inject faults, check the token."""
    emu = emulator()
    key = _route_key()
    emu.traffic.count(key)
    knobs = emu.traffic.knobs
    if key in knobs.missing_routes:
        if knobs.missing_route_body == "json":
            return Response('{"status": 404, "message": "Not Found", "data": null}',
                            status=404, mimetype="application/json")
        return Response("<html><body><h1>404 - Not Found</h1></body></html>", status=404,
                        mimetype="text/html")
    if key in knobs.ignored_routes:
        return jsonify({"data": [], "status": 200, "message": "Success", "count": None})
    if knobs.latency_ms:
        emu.stopping.wait(knobs.latency_ms / 1000.0)
    wait = emu.traffic.throttle()
    if wait is not None:
        resp = jsonify({"status": 429, "message": "Too many requests.", "error": []})
        resp.status_code = 429
        resp.headers["Retry-After"] = emu.traffic.retry_after(wait)
        return resp
    fault = emu.traffic.pick_fault(key) or _first_create_fault(emu, key)
    if fault == "commit_then_fail":
        g.commit_then_fail = True
    elif fault is not None:
        return _inject(fault, knobs, emu)
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy read
    if req.blueprint != "auth":
        claims = emu.state.auth.authenticate(req.headers.get("Authorization"))
        g.user = claims["user"]["id"]
    return None


def _first_create_fault(emu: Emulator, key: str) -> str | None:
    """A create is a POST outside auth; its fingerprint is the route and what it carries
    (form fields and file names for multipart, whose boundary is random)."""
    if not emu.traffic.knobs.first_create_fails or request.method != "POST" \
            or request.blueprint in (None, "auth"):
        return None
    if request.files or request.form:
        parts = sorted((k, v) for k, v in request.form.items(multi=True))
        parts += sorted((k, f.filename or "") for k, f in request.files.items(multi=True))
        carried = repr(parts).encode()
    else:
        carried = request.get_data(cache=True)
    return emu.traffic.first_create(key + ":" + hashlib.sha256(carried).hexdigest())


def _inject(fault: str, knobs: Knobs, emu: Emulator) -> Response:
    if fault == "timeout":
        emu.stopping.wait(knobs.hang_seconds)
    if fault in ("drop", "timeout"):
        _drop_connection()
        return Response(b"", status=500)
    if fault == "html502":
        return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", status=502,
                        mimetype="text/html")
    status = int(fault)
    resp = jsonify({"status": status, "message": "Service unavailable.", "error": []})
    resp.status_code = status
    return resp


def _drop_connection() -> None:
    """Close the TCP connection under the request: the client sees a connection error."""
    drop = request.environ.get(DROP_CONNECTION)
    if drop is not None:
        drop()


def _after(resp: Response) -> Response:
    if g.get("commit_then_fail"):
        # The handler ran and its transaction committed; the caller only sees a failure.
        return _inject("html502", emulator().traffic.knobs, emulator())
    # the service's own clock (moved on by /_emulator/clock), as every HTTP server says it
    resp.headers["Date"] = _date(int(emulator().state.ctx.clock()))
    return resp


@functools.lru_cache(maxsize=1)
def _date(second: int) -> str:
    """The Date header for a second: made once a second, not once a response."""
    return http_date(second)


def _too_large(_: RequestEntityTooLarge) -> Response:
    """ASSUMPTION: Kestrel's default request body limit (30,000,000 bytes), answered 413
    with the service's envelope; no source shows the vendor's own limit."""
    return _refusal(_Status413(f"The request body is larger than {MAX_BODY_BYTES} bytes."))


def _unreadable(exc: Exception) -> Response:
    """A request the rules could not read (a value of a type no rule foresaw) is the client's
    fault, answered as ASP.NET answers a body it cannot bind: 400, never a crash page. Each
    one is recorded: the test suite fails if any test meets one it did not mean to send."""
    emulator().unreadable.append(f"{request.method} {request.path}: {type(exc).__name__}")
    return _refusal(BadRequest("One or more validation errors occurred."))


class _Status413(EmulatorError):
    status = 413


def _refusal(exc: EmulatorError) -> Response:
    # Only the auth service answers with its ErrorResponse shape (error and data objects);
    # every other service uses ErrorsResponse, a 401 included.
    body = exc.body() if request.blueprint == "auth" else EmulatorError.body(exc)
    if exc.absent and emulator().traffic.knobs.wording == "terse":
        body = {"status": exc.status, "message": "No record found.", "error": []}
    resp = jsonify(body)
    resp.status_code = exc.status
    return resp


def _discovery(skey: str, env: str) -> Response:
    """`GET /api/uisdk/solutionkey/{skey}/env/{env}?version=&pf=` answering base URLs here."""
    state = emulator().state
    acc = state.account
    pf = request.args.get("pf", acc.pf)
    if skey != acc.solution_key or env != acc.env or pf != acc.pf:
        # ASSUMPTION: an unknown solution key/env/pf answers 200 with `data: null`.
        return jsonify({"status": 404, "message": "Solution key or environment not found.",
                        "data": None})
    root = request.host_url.rstrip("/")
    version = API_VERSIONS[acc.pf]
    data = {f"{svc}BaseUrl": f"{root}/{svc}/api/{version}" for svc in SERVICES}
    for alias, svc in (("entity", "user"), ("template", "device"), ("firmwareUpgrade",
                                                                    "firmware")):
        data[f"{alias}BaseUrl"] = f"{root}/{svc}/api/{version}"
    return jsonify({"status": 200, "message": "Success", "data": data})


def _download(guid: str, name: str) -> Response:
    emu = emulator()
    if not emu.check_file_sig(guid, request.args.get("se", ""), request.args.get("sig", "")):
        return Response("<Error><Code>AccessDenied</Code></Error>", status=403,
                        mimetype="application/xml")
    found = emu.state.files.file_content(guid)
    if found is None or found[0]["name"] != name:
        return Response("<Error><Code>NoSuchKey</Code></Error>", status=404,
                        mimetype="application/xml")
    return Response(found[1], mimetype="application/octet-stream")


def _register_control(app: Flask) -> None:
    """`/_emulator/*`: reset, seed, dump, counters and knobs; test plumbing, no auth."""

    @app.post("/_emulator/connection")
    def connection() -> Response:
        """What a device's listing reports of its connection (the emulator has no MQTT):
        `{"uniqueId": ..., "connected": true|false, "at": ISO-8601}`. Test and demo
        plumbing for the fleet-safety guards; the fields are the PKG lib/device.py ones."""
        body = request.get_json(force=True, silent=True) or {}
        duid, connected, at = body.get("uniqueId"), body.get("connected"), body.get("at")
        if not isinstance(duid, str) or not isinstance(connected, bool) or \
                not isinstance(at, str):
            return Response("expected {uniqueId: str, connected: bool, at: ISO-8601 str}",
                            status=400, mimetype="text/plain")
        try:
            known = emulator().state.devices.set_connection(duid, connected, at)
        except Conflict as exc:
            return Response(str(exc), status=409, mimetype="text/plain")
        if not known:
            return Response(f"no device {duid!r}", status=404, mimetype="text/plain")
        return jsonify({"status": "set"})

    @app.post("/_emulator/clock")
    def clock() -> Response:
        """Move the emulator's clock on (`{"advance_s": N}`): rehearse what hours of
        OTA progress, soak times and token expiry do, in a test's seconds."""
        body = request.get_json(force=True, silent=True) or {}
        step = body.get("advance_s")
        if not isinstance(step, int | float) or isinstance(step, bool) or step < 0:
            return Response("expected {advance_s: seconds >= 0}", status=400,
                            mimetype="text/plain")
        emulator().state.ctx.advance(float(step))
        return jsonify({"status": "advanced", "now": emulator().state.ctx.now()})

    @app.post("/_emulator/reset")
    def reset() -> Response:
        emulator().state.reset()
        emulator().traffic.reset_counts()
        return jsonify({"status": "reset"})

    @app.post("/_emulator/seed")
    def seed() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        emu = emulator()
        fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in body.items()
                  if k in Account.__dataclass_fields__}
        emu.state.account = Account(**{**asdict(emu.state.account), **fields})
        emu.state.reset()
        return jsonify({"status": "seeded", "account": _public_account(emu.state.account)})

    @app.get("/_emulator/state")
    def dump() -> Response:
        everything = emulator().state.store.dump()
        for secret_kind in ("refreshtoken", "basictoken", "thumbprint"):
            everything.pop(secret_kind, None)
        for user in everything.get("user", []):
            user.pop("passwordHash", None)
        return jsonify(everything)

    @app.get("/_emulator/stats")
    def stats() -> Response:
        counts = emulator().traffic.counts
        return jsonify({"total": sum(counts.values()), "requests": dict(counts)})

    @app.post("/_emulator/stats/reset")
    def stats_reset() -> Response:
        emulator().traffic.reset_counts()
        return jsonify({"status": "reset"})

    @app.put("/_emulator/knobs")
    def set_knobs() -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return Response("knobs: expected a JSON object", status=400, mimetype="text/plain")
        return _set_knobs(body)


KNOB_NAMES = frozenset({
    "faults", "latency_ms", "rate_limit", "fault_seed", "hang_seconds", "wording",
    "empty_204", "first_create_fails", "missing_routes", "missing_route_body",
    "ignored_routes", "max_page_size",
    "token_lifetime", "repeat_pages", "publish_delay_s", "put_replaces",
    "refuse_released_delete", "ota_success_rate", "ota_delay_s"})


def _set_knobs(body: dict[str, Any]) -> Response:
    """`PUT /_emulator/knobs`; an unknown name is a 400 naming it, so a typo in a test never
    silently tests nothing."""
    emu = emulator()
    unknown = sorted(set(body) - KNOB_NAMES)
    if unknown:
        return Response(f"unknown knob(s): {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(KNOB_NAMES))})", status=400, mimetype="text/plain")
    try:
        faults = [FaultRule.parse(str(spec)) for spec in _field(body, "faults", list, [])]
        knobs = Knobs(latency_ms=_field(body, "latency_ms", float, 0.0),
                      rate_limit=_field(body, "rate_limit", float, None),
                      faults=faults, fault_seed=_field(body, "fault_seed", int, None),
                      hang_seconds=_field(body, "hang_seconds", float, 5.0),
                      wording=_field(body, "wording", str, "swagger"),
                      empty_204=_field(body, "empty_204", bool, False),
                      first_create_fails=_field(body, "first_create_fails", bool, False),
                      missing_routes=tuple(str(r) for r in _field(body, "missing_routes",
                                                                   list, [])),
                      missing_route_body=_field(body, "missing_route_body", str, "html"),
                      ignored_routes=tuple(str(r) for r in _field(body, "ignored_routes",
                                                                   list, [])))
        page_size = _field(body, "max_page_size", int, None)
        lifetime = _field(body, "token_lifetime", int, None)
        repeat = _field(body, "repeat_pages", bool, None)
        publish_delay = _field(body, "publish_delay_s", float, None)
        put_replaces = _field(body, "put_replaces", bool, None)
        refuse_released = _field(body, "refuse_released_delete", bool, None)
        ota_rate = _field(body, "ota_success_rate", float, None)
        ota_delay = _field(body, "ota_delay_s", float, None)
        if ota_rate is not None and not 0.0 <= ota_rate <= 1.0:
            raise ValueError("ota_success_rate: a share from 0 to 1")
    except ValueError as exc:
        return Response(str(exc), status=400, mimetype="text/plain")
    emu.traffic.configure(knobs)
    if "max_page_size" in body:
        emu.state.limits.max_page_size = page_size
    if lifetime is not None:
        emu.state.limits.token_lifetime = lifetime
    if repeat is not None:
        emu.state.limits.repeat_pages = repeat
    if publish_delay is not None:
        emu.state.limits.publish_delay_s = publish_delay
    if put_replaces is not None:
        emu.state.limits.put_replaces = put_replaces
    if refuse_released is not None:
        emu.state.limits.refuse_released_delete = refuse_released
    if ota_rate is not None:
        emu.state.limits.ota_success_rate = ota_rate
    if ota_delay is not None:
        emu.state.limits.ota_delay_s = ota_delay
    if knobs.fault_seed is not None:  # OTA outcomes follow the same seed
        emu.state.limits.ota_seed = knobs.fault_seed
    return jsonify({"status": "configured"})


def _field(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """A knob's value of the right type (ints accepted where floats are), or ValueError."""
    value = body.get(name, default)
    if value is None or value is default:
        return value
    numeric = kind is float and isinstance(value, int) and not isinstance(value, bool)
    if not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))) \
            and not numeric:
        raise ValueError(f"knob {name!r}: expected {kind.__name__}, got {value!r}")
    if kind in (int, float) and not (0 <= value < 1e9):
        raise ValueError(f"knob {name!r}: {value!r} is out of range")
    return kind(value)


def _public_account(acc: Account) -> dict[str, Any]:
    public = asdict(acc)
    public.pop("user_password")
    return public
