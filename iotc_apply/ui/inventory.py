"""`iotc get` output: columns on a terminal, JSON or YAML for scripts; all streamed.

The table sizes its columns from the first WINDOW rows and prints each row as it comes, so
memory stays flat however long the listing is (a later, longer value widens only its own
line). JSON is one array written element by element; YAML one sequence item per row.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from .inert import inert

if TYPE_CHECKING:
    from rich.console import Console

WINDOW = 200
Row = dict[str, Any]


def render(rows: Iterable[Row], fields: tuple[str, ...], fmt: str, out: IO[str],
           console: Callable[[], Console]) -> int:
    """Write every row; the number written. `console` makes the table's console: JSON and
    YAML need none (nor rich's imports)."""
    if fmt == "json":
        return _json(rows, fields, out)
    if fmt == "yaml":
        return _yaml(rows, fields, out)
    return _table(iter(rows), fields, console())


def _cell(value: Any) -> str:
    """A table cell: names from the account made inert, on one line."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return inert(str(value), one_line=True)


def _table(rows: Iterator[Row], fields: tuple[str, ...], console: Console) -> int:
    from rich.markup import escape

    head = list(itertools.islice(rows, WINDOW))
    if not head:
        return 0
    widths = [max([len(f)] + [len(_cell(r.get(f))) for r in head]) for f in fields]
    header = "  ".join(f.upper().ljust(w) for f, w in zip(fields, widths, strict=True))
    console.print(f"[bold]{escape(header.rstrip())}[/]", highlight=False)
    count = 0
    for row in itertools.chain(head, rows):
        line = "  ".join(_cell(row.get(f)).ljust(w) for f, w in zip(fields, widths,
                                                                      strict=True))
        console.print(escape(line.rstrip()), highlight=False, soft_wrap=True)
        count += 1
    return count


def _json(rows: Iterable[Row], fields: tuple[str, ...], out: IO[str]) -> int:
    count = 0
    out.write("[")
    encode = json.JSONEncoder().encode  # json.dumps' own defaults, its argument checks once
    for row in rows:
        out.write(("," if count else "") + "\n  " + encode({f: row.get(f) for f in fields}))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _yaml(rows: Iterable[Row], fields: tuple[str, ...], out: IO[str]) -> int:
    import yaml  # ~20 ms of every `get` that prints a table or JSON

    count = 0
    for row in rows:
        out.write(yaml.safe_dump([{f: row.get(f) for f in fields}], sort_keys=False,
                                 allow_unicode=True))
        count += 1
    if not count:
        out.write("[]\n")
    return count
