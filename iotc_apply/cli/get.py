"""`iotc get`: one kind of object, sorted; JSON/YAML field names are stable for scripts."""

from __future__ import annotations

import argparse
import sys

from ..ui.console import make_console
from .context import EXIT_OK, Invocation, UsageError
from .root import AddParser


def register(add: AddParser) -> None:
    parser = add("get", help="list templates, devices, firmware, upgrades or rollouts")
    parser.add_argument("kind", metavar="KIND", help="templates, devices, firmware, upgrades "
                                                     "or rollouts (what OTA pushed of each "
                                                     "upgrade; singular, or tpl, dev, fw, "
                                                     "up, ota, too)")
    parser.add_argument("glob", nargs="?", default="*", metavar="NAME-GLOB",
                        help="only names matching this glob (upgrades and rollouts: VERSION "
                             "or FW@VERSION)")
    parser.add_argument("--template", metavar="CODE", help="only objects of this template")
    parser.add_argument("--entity", metavar="NAME", help="only devices of this entity")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--active", dest="active", action="store_const", const=True,
                       default=None, help="only active devices")
    state.add_argument("--inactive", dest="active", action="store_const", const=False,
                       help="only inactive devices")
    parser.add_argument("--sort", metavar="FIELD",
                        help="sort by this field (default: the natural key, e.g. uniqueId)")
    parser.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"),
                        default="table", help="table (default), wide (every field), json, yaml")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from .. import inventory
    from ..ui import inventory as show

    try:
        kind_name = inventory.canonical(args.kind)
        inventory.check(kind_name, args.glob)
        if (args.entity is not None or args.active is not None) and kind_name != "devices":
            raise inventory.UnknownKind("--entity, --active and --inactive select devices")
        select = inventory.Select(args.template, args.entity, args.active)
        kind = inventory.KINDS[kind_name]
        fields = kind.narrow if args.output == "table" else kind.fields
        with inv.connect() as api:
            rows = inventory.rows(api, kind_name, args.glob, select, args.sort)
    except inventory.UnknownKind as exc:
        raise UsageError(str(exc)) from None
    count = show.render(rows, fields, args.output, sys.stdout, make_console)
    if not count:
        print(f"No {kind_name} match {args.glob!r}" + (f" on template {args.template}"
                                                       if args.template else "") + ".",
              file=sys.stderr)
    return EXIT_OK
