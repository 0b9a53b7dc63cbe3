"""Finding manifest files, and reading the files they name without leaving the root.

A PATH given on the command line sets the manifest root: the directory itself, or a file's
directory. Everything a manifest names (firmware files, certificates, template JSON) must
resolve inside that root: absolute paths, `..` escapes and symlinks that lead out are refused,
because manifests come from pull requests. May import: `diagnostics`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic, Position
from .yamlsafe import size_problem

MANIFEST_SUFFIXES = (".yaml", ".yml")
SKIPPED_DIRS = {".git", ".iotc", "__pycache__", "node_modules"}


@dataclass(frozen=True)
class ManifestFile:
    path: Path
    shown: str
    root: Path


class Refused(Exception):
    """A file reference that cannot be used; its message completes '<ref>: ...'."""


def discover(paths: list[str]) -> tuple[list[ManifestFile], list[Diagnostic]]:
    """The manifest files under each PATH (recursively for directories), in a stable order."""
    found: list[ManifestFile] = []
    diags: list[Diagnostic] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            root = Path(os.path.realpath(path))
            files, refused = _walk(path, root)
            diags += [Diagnostic.error(Position(str(p)), "is a symlink that leads outside the "
                                       "manifest root") for p in refused]
            found += [ManifestFile(file, str(file), root) for file in files]
        elif path.is_file():
            found.append(ManifestFile(path, given, Path(os.path.realpath(path.parent))))
        else:
            diags.append(Diagnostic.error(Position(given), "no such file or directory"))
    if not found and not diags:
        diags.append(Diagnostic.error(Position(" ".join(paths) or "."),
                                      "no manifest files (*.yaml, *.yml) found"))
    return found, diags


def file_digest_line(mf: ManifestFile, given: list[str]) -> bytes:
    """One file's part of the manifests' digest: which PATH it came from, its path inside
    that root, and its content's SHA-256. Paths inside the root, not absolute ones, so a plan
    made in one checkout verifies in another."""
    index = next((i for i, g in enumerate(given) if mf.shown == g or
                  mf.shown.startswith(g.rstrip("/") + "/")), -1)
    inside = os.path.relpath(os.path.realpath(mf.path), mf.root)
    try:
        # the size check first: a 6 GB file is refused by the loader, never read here
        problem = size_problem(mf.path)
        if problem:
            content = f"refused: {problem}"
        else:
            with mf.path.open("rb") as f:
                content = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        content = "unreadable"  # the loader reports it; the digest only has to differ
    return f"{index}\0{inside}\0{content}\n".encode()


def _walk(top: Path, root: Path) -> tuple[list[Path], list[Path]]:
    """Manifest files under `top`, and the symlinks (files or folders) that lead out of root.

    Symlinked folders are followed like symlinked files: when they stay inside the root
    (each real folder read once, so a loop ends), never skipped silently, because devices
    declared in a skipped folder would be planned for deletion by prune.
    """
    files: list[Path] = []
    refused: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen or not _inside(Path(real), root):
            refused += [] if real in seen else [Path(dirpath)]
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            if name.endswith(MANIFEST_SUFFIXES):
                file = Path(dirpath) / name
                inside = _inside(Path(os.path.realpath(file)), root)
                (files if inside else refused).append(file)
    return files, refused


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve(ref: str, manifest: ManifestFile) -> Path:
    """The real path of a file a manifest names, relative to the manifest; or `Refused`."""
    if os.path.isabs(ref) or ref.startswith("~"):
        raise Refused("absolute paths are not allowed; name files relative to the manifest")
    lexical = Path(os.path.normpath(manifest.path.parent.resolve() / ref))
    real = Path(os.path.realpath(lexical))
    if not _inside(real, manifest.root):
        if _inside(lexical, manifest.root):
            raise Refused("is a symlink that leads outside the manifest root")
        raise Refused("leads outside the manifest root")
    if not real.exists():
        raise Refused("does not exist")
    if not real.is_file():
        raise Refused("is not a file")
    return real


def read_limited(path: Path, limit: int) -> bytes:
    size = path.stat().st_size
    if size > limit:
        raise Refused(f"is {size} bytes; at most {limit} are read")
    return path.read_bytes()


def shown_path(path: Path) -> str:
    """A path relative to the working directory when inside it (plan files travel between
    checkouts: a CI job plans in one and applies in another), else absolute."""
    cwd = Path.cwd().resolve()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
