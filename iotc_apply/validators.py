"""JSON Schema validators compiled by fastjsonschema, their bytecode kept between runs.

fastjsonschema writes a validator as Python source and compiles it: 70-100 ms for the kinds
a plan reads, in every command, for code that only changes with the schema. The compiled
code is kept where Python keeps the package's own bytecode (`__pycache__` beside the
schemas), under a name made of everything that shapes it (the schema's text, fastjsonschema's
version, the interpreter's bytecode magic number), so a changed schema or an upgrade misses it.
Whoever can write there can already replace any `.pyc` of the package: the cache trusts
nothing Python's own import system does not. Where the folder is read-only (a system-wide
install), every run compiles, as before. May import: `safefile`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import types
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from typing import Any

import fastjsonschema

from .safefile import write_private

CACHE = Path(__file__).resolve().parent / "schemas" / "__pycache__"


def compiled(definition: dict[str, Any]) -> Any:
    """fastjsonschema's validator for `definition` (no `$id`, no formats, no remote refs),
    from its kept bytecode when there is one. Raises on the first error, as
    `fastjsonschema.compile`'s does."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256("\0".join((text, fastjsonschema.VERSION, MAGIC_NUMBER.hex()))
                         .encode()).hexdigest()[:24]
    path = CACHE / f"validator-{key}.bin"
    code = _kept(path)
    if code is None:
        source = fastjsonschema.compile_to_code(definition, handlers={}, use_formats=False)
        code = compile(source, f"<schema validator {key}>", "exec")
        _keep(path, code)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 (fastjsonschema's own output, as compile() runs it)
    return namespace["validate"]


def _kept(path: Path) -> types.CodeType | None:
    try:
        code = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _keep(path: Path, code: types.CodeType) -> None:
    """Written whole or not at all (`safefile.write_private`: a temp file renamed), readable
    by all as a `.pyc` is; a folder that cannot be written only costs the next run the
    compile again."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(exist_ok=True)  # as Python makes __pycache__: the umask decides
        write_private(path, marshal.dumps(code), sync_dir=False, mode=0o644,
                      make_parent=False)
