"""`iotc export`: manifests (and upgrade files) for what the account holds; never keys."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from ..defaults import DEFAULT_KEYS_DIR
from ..ui.console import make_console
from . import args as shared
from .context import EXIT_OK, Invocation, UsageError, key_policy
from .destroy import SWEPT_KINDS, kinded_glob
from .root import AddParser


def register(add: AddParser) -> None:
    parser = add("export", help="write manifests for what the account holds (never keys)")
    parser.add_argument("out", metavar="OUT-DIR", help="folder to write (must be empty)")
    parser.add_argument("--match", action="append", metavar="ADDR-GLOB",
                        help="only matching objects (and the templates they need), e.g. "
                             "'device/lt-*'; repeatable")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that is not empty")
    parser.add_argument("--keys-dir", default=str(DEFAULT_KEYS_DIR), metavar="DIR",
                        help="key store: devices without a key here are exported with "
                             "certificate: external")
    shared.parallelism(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from .. import export, operations, snapshot

    out = Path(args.out)
    globs = tuple(kinded_glob(g, "--match", SWEPT_KINDS) for g in args.match or ())
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"{out} is not empty; pass --force to write into it")
    with inv.connect(parallelism=args.parallelism) as api:
        me = api.session.identity()
        snap = snapshot.take(api, None, None, parallelism=args.parallelism)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = (f"Exported by iotc export from {me.pf}/{me.env} cpId {me.cpid} "
                  f"({me.username}) at {stamp}.")
        try:
            kept = operations.open_store(api, key_policy(inv, args.keys_dir)).duids()
        except OSError as exc:
            raise UsageError(f"cannot read the key store {args.keys_dir}: "
                             f"{exc.strerror}") from None
        result = export.export(snap, kept, globs, header)
        operations.write_export(api, result, out, args.parallelism)
    console = make_console()
    for line in result.skipped:
        console.print(f"warning: {line}", markup=False, highlight=False)
    for item in result.fetch:
        if not item.file.tag:
            console.print(f"warning: {item.path}: the service gave no MD5 for this file; its "
                          "content is unverified (marked so in firmware.yaml)", markup=False,
                          highlight=False)
    c = result.counts
    console.print(
        f"Exported {c['templates']} template(s), {c['devices']} device(s) as "
        f"{c['device_sets']} DeviceSet(s) and {c['device_documents']} Device document(s), "
        f"{c['firmware']} firmware and {c['files']} file(s) to {out}/.", highlight=False)
    return EXIT_OK
