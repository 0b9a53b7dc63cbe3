"""`iotc emulator serve`: the bundled emulator on 127.0.0.1, with the environment that
points iotc (or the official client) at it."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from ..defaults import DEFAULT_EMULATOR_DB
from ..ui.console import make_console
from .context import EXIT_OK, Invocation, UsageError
from .root import AddParser


def register(add: AddParser) -> None:
    emulator = add("emulator", api=False, help="the local IoTConnect emulator")
    sub = emulator.add_subparsers(dest="emulator_command", metavar="ACTION", required=True,
                                  help="serve: run it on 127.0.0.1")
    serve = sub.add_parser(
        "serve", help="serve the emulator on 127.0.0.1",
        description="Serve the emulator over HTTP on 127.0.0.1 and print the environment "
        "that points iotc (or the official client) at it.",
        epilog="examples:\n  iotc emulator serve --port 8080\n  iotc emulator serve --db "
        ":memory: --latency 20 --rate-limit 5\n  iotc emulator serve --fault 'POST "
        "/Device=0.2:503,drop'", formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--db", default=str(DEFAULT_EMULATOR_DB), help="SQLite state file")
    serve.add_argument("--latency", type=float, default=0.0, metavar="MS",
                       help="added latency per request")
    serve.add_argument("--fault-rate", type=float, default=0.0, metavar="F",
                       help="share of all requests that fail (5xx, HTML 502, dropped "
                            "connection, commit-then-fail)")
    serve.add_argument("--fault", action="append", metavar="SPEC",
                       help="per-route faults: 'METHOD /route=RATE[:KINDS][@N]', repeatable")
    serve.add_argument("--rate-limit", type=float, default=None, metavar="RPS",
                       help="answer 429 with Retry-After above this request rate")
    serve.add_argument("--page-size", type=int, default=None, metavar="N",
                       help="cap every page at N items, silently")
    serve.add_argument("--token-lifetime", type=int, default=86400, metavar="S",
                       help="seconds an access token lives (default 86400, as the service)")
    serve.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from ..emulator import EmulatorServer, FaultRule, Knobs, Limits

    try:
        faults = [FaultRule.parse(spec) for spec in args.fault or []]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.fault_rate:
        faults.append(FaultRule("*", args.fault_rate, ("503", "html502", "drop",
                                                       "commit_then_fail")))
    knobs = Knobs(latency_ms=args.latency, rate_limit=args.rate_limit, faults=faults,
                  fault_seed=args.seed)
    limits = Limits(token_lifetime=args.token_lifetime, max_page_size=args.page_size)
    if args.db != ":memory:":
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    server = EmulatorServer(db=args.db, port=args.port, limits=limits, knobs=knobs).start()
    acc = server.emulator.state.account
    out = make_console()
    out.print(f"# IoTConnect emulator on {server.url} (state: {args.db}); Ctrl-C stops it.")
    for name, value in (("IOTC_DISCOVERY_URL", server.discovery_url),
                        ("IOTC_SKEY", acc.solution_key), ("IOTC_ENV", acc.env),
                        ("IOTC_PF", acc.pf), ("IOTC_USER", acc.user_email),
                        ("IOTC_PASS", acc.user_password)):
        out.print(f"export {name}='{value}'")
    try:
        threading.Event().wait()
    finally:
        server.stop()
    return EXIT_OK
