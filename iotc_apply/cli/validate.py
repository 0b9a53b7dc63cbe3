"""`iotc validate`: schema and reference checks of manifests; no network."""

from __future__ import annotations

import argparse
import sys

from ..ui.console import make_console
from . import args as shared
from .context import EXIT_ERROR, EXIT_OK, Invocation, variable_inputs
from .root import AddParser


def register(add: AddParser) -> None:
    parser = add("validate", api=False, help="check manifests (schema, references); no network")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="manifest files or directories (searched for *.yaml, *.yml)")
    shared.variables(parser)
    parser.add_argument("--format", choices=("text", "github", "json"), default="text",
                        help="text (default), github (workflow commands that annotate a "
                             "pull request), json (schemas/diagnostics.schema.json)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, inv: Invocation) -> int:
    from ..manifest import load
    from ..ui import diagnostics as show

    loaded = load(args.paths, variable_inputs(inv, args.var, args.var_file))
    resources = len(loaded.desired.resources)
    if args.format == "github":
        sys.stdout.write(show.github(loaded.diagnostics))
    elif args.format == "json":
        sys.stdout.write(show.as_json(loaded.diagnostics, loaded.files, loaded.documents,
                                      resources))
    else:
        err, out = make_console(sys.stderr), make_console()
        show.render(err, loaded.diagnostics)
        line = show.summary(loaded.diagnostics, loaded.files, loaded.documents, resources)
        (out if loaded.ok else err).print(line)
    return EXIT_OK if loaded.ok else EXIT_ERROR
