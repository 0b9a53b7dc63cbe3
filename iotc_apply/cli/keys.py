"""`iotc keys list | verify | unseal | seal | attest`: the device key store."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ui.console import make_console
from . import args as shared
from .context import EXIT_ERROR, EXIT_OK, Invocation, UsageError, key_policy
from .root import AddParser, common

if TYPE_CHECKING:
    from ..keystore import KeyStore


def register(add: AddParser) -> None:
    keys = add("keys", api=False, help="the device key store: list, verify, unseal, seal")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True,
                              help="list, verify, unseal or seal")
    raw = {"formatter_class": argparse.RawDescriptionHelpFormatter}

    def store_args(parser: argparse.ArgumentParser, account: bool) -> None:
        shared.keys_dir(parser, "the key store")
        if account:
            parser.add_argument("--account", metavar="CPID-ENV",
                                help="the account folder (default: the only one there)")

    listing = sub.add_parser("list", parents=[common()], help="kept keys: form, "
                             "certificate, whether the device exists live",
                             description="List the kept keys of the logged-in account.",
                             epilog="examples:\n  iotc keys list 'lt-*'", **raw)
    listing.add_argument("glob", nargs="?", default="*", metavar="GLOB",
                         help="only devices matching")
    store_args(listing, False)
    verify = sub.add_parser("verify", parents=[common()], help="kept pairs match; live "
                            "devices have keys", description="Check every kept key against "
                            "its certificate (sealed ones with --identity) and that every "
                            "live device of a self-signed template has a kept key.",
                            epilog="examples:\n  iotc keys verify\n  iotc keys verify "
                            "--identity ~/.age/iotc.txt", **raw)
    verify.add_argument("--identity", metavar="FILE", help="age identity file, to check "
                                                           "sealed keys too")
    store_args(verify, False)
    unseal = sub.add_parser("unseal", help="write devices' keys for provisioning",
                            description="Decrypt sealed keys into a private folder, for the "
                            "person who provisions hardware. Never overwrites a file.",
                            epilog="examples:\n  mkdir -m 700 out && iotc keys unseal "
                            "lt-0001 lt-0002 --identity ~/.age/iotc.txt --out out", **raw)
    unseal.add_argument("devices", nargs="+", metavar="DEVICE", help="device unique ids")
    unseal.add_argument("--identity", required=True, metavar="FILE",
                        help="age identity file (AGE-SECRET-KEY-1...)")
    unseal.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write into (mode 700)")
    store_args(unseal, True)
    seal = sub.add_parser("seal", help="convert a plain store to the sealed form",
                          description="Encrypt every plain key.pem to the recipients and "
                          "remove the plaintext (after the sealed file is durable).",
                          epilog="examples:\n  iotc keys seal --recipient age1...", **raw)
    seal.add_argument("--recipient", action="append", required=True, metavar="AGE1...",
                      help="age recipient; repeatable")
    store_args(seal, True)
    attest = sub.add_parser(
        "attest", help="attest every kept key (once, for a store you trust)",
        description="Write an attestation beside every kept key and certificate, with "
        "IOTC_KEYS_ATTEST_KEY (else IOTC_PLAN_KEY). Apply attests the keys it makes and uses "
        "a kept key for a new device only when its attestation is right: the age recipient "
        "is public, so anyone can add a sealed key. Run this once on a store made before "
        "attestations, after checking what it holds.",
        epilog="examples:\n  IOTC_KEYS_ATTEST_KEY=... iotc keys attest", **raw)
    store_args(attest, True)
    keys.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from ..keystore import KeyStoreError

    actions = {"seal": _seal, "unseal": _unseal, "attest": _attest, "list": _list,
               "verify": _verify}
    try:
        return actions[args.keys_command](args, inv)
    except KeyStoreError as exc:
        raise UsageError(str(exc)) from None


def _offline_store(args: argparse.Namespace, sealed_to: tuple[Any, ...] = ()) -> KeyStore:
    """The key store without an account: --account CPID-ENV, or the only account folder."""
    from ..keystore import KeyStore

    base = Path(args.keys_dir)
    account = args.account
    if account is None:
        folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink()
                         and not p.name.startswith(".")) if base.is_dir() else []
        if len(folders) != 1:
            raise UsageError(f"{base} holds {len(folders)} account folder(s); name one with "
                             "--account CPID-ENV")
        account = folders[0]
    return KeyStore(base, account, sealed_to)


def _seal(args: argparse.Namespace, inv: Invocation) -> int:
    from ..keystore import recipients, seal

    store = _offline_store(args, recipients(args.recipient))
    done = [d for d in sorted(store.duids()) if seal(store, d)]
    make_console().print(f"Sealed {len(done)} key(s) in {store.root}/; no plaintext key is "
                         "left there.", highlight=False)
    return EXIT_OK


def _unseal(args: argparse.Namespace, inv: Invocation) -> int:
    from ..keystore import identities
    from ..keystore.custody import check_private_folder, unseal_into

    out = Path(args.out)
    check_private_folder(out)  # before the store: the likelier mistake is the folder
    count = unseal_into(_offline_store(args), args.devices, identities(Path(args.identity)),
                        out)
    make_console().print(f"Unsealed {count} key(s) into {out}/.", highlight=False)
    return EXIT_OK


def _attest(args: argparse.Namespace, inv: Invocation) -> int:
    secret = inv.env.attest_key()
    if secret is None:
        raise UsageError("keys attest needs IOTC_KEYS_ATTEST_KEY (or IOTC_PLAN_KEY): the "
                         "secret attestations are made with")
    store = _offline_store(args)
    store.attest_key = secret
    store.check_private()
    count = store.attest_all()
    make_console().print(f"Attested {count} kept key(s) in {store.root}/.", highlight=False)
    return EXIT_OK


def _list(args: argparse.Namespace, inv: Invocation) -> int:
    from .. import operations
    from ..keystore import kept

    with inv.connect() as api:
        store = operations.open_store(api, key_policy(inv, args.keys_dir))
        live = operations.live_duids(api)
    out = make_console()
    rows = [k for k in kept(store) if fnmatch.fnmatchcase(k.duid, args.glob)]
    out.print(f"{'DEVICE':<24} {'FORM':<7} {'NOT AFTER':<11} {'LIVE':<5} SUBJECT",
              highlight=False)
    for k in rows:
        out.print(f"{k.duid:<24} {k.form:<7} {k.not_after:<11} "
                  f"{'yes' if k.duid in live else 'no':<5} {k.subject}", highlight=False)
    return EXIT_OK


def _verify(args: argparse.Namespace, inv: Invocation) -> int:
    """One line per problem; exit 1 on any, or when nothing at all was verified."""
    from .. import operations
    from ..keystore import identities

    identity = identities(Path(args.identity)) if args.identity else None
    with inv.connect() as api:
        store = operations.open_store(api, key_policy(inv, args.keys_dir))
        found = operations.verify_keys(api, store, identity)
    err = make_console(sys.stderr)
    for line in found.problems:
        err.print(f"problem: {line}", highlight=False)
    make_console().print(
        f"{found.pairs} key/certificate pair(s) match; {found.unopened} sealed key(s) not "
        f"opened (no --identity); {found.registered} registered certificate(s) match; "
        + (f"{found.attested} attested, {found.kept - found.attested} not; "
           if found.attestations_checked else
           "attestations not checked (no IOTC_KEYS_ATTEST_KEY or IOTC_PLAN_KEY); ")
        + f"{len(found.problems)} problem(s).", highlight=False)
    if found.nothing_verified:
        err.print("problem: nothing was verified (sealed keys need --identity; the service "
                  "shows no registered certificates here; no attestation key is set)",
                  highlight=False)
        return EXIT_ERROR
    return EXIT_ERROR if found.problems else EXIT_OK
