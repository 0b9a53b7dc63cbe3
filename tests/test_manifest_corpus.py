"""The corpus of broken manifests: each gives exit 1, its one-line diagnostic, no traceback.

Each folder under `tests/manifests/bad/` is one case: the manifests and `expected.txt`, the
first line `iotc validate <case>` must print. Five cases are completed at run time because
their point cannot live in git as such: a symlink leading out of the root, a file over the
size limit, one over the node limit, one nested 50,000 deep (a SIGSEGV before the loader
read events), and bytes that are not UTF-8.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from iotc_apply.cli import main
from iotc_apply.manifest.yamlsafe import MAX_FILE_BYTES, MAX_NODES

CORPUS = Path(__file__).parent / "manifests" / "bad"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def _complete(case_dir: Path, outside: Path) -> None:
    name = case_dir.name
    if name == "firmware-file-symlink-out":
        (case_dir / "fw").mkdir(exist_ok=True)
        outside.write_bytes(b"secret")
        os.symlink(outside, case_dir / "fw" / "escape.bin")
    elif name == "oversized-file":
        (case_dir / "m.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    elif name == "nested-too-deep":
        (case_dir / "m.yaml").write_text("apiVersion: iotc/v1\nkind: Device\nmetadata: {name: "
                                         "d}\nspec: " + "[" * 50_000 + "]" * 50_000 + "\n")
    elif name == "too-many-nodes":
        (case_dir / "m.yaml").write_text("apiVersion: iotc/v1\nkind: Device\nmetadata: {name: "
                                         "d}\nspec: [" + "0," * MAX_NODES + "0]\n")
    elif name == "not-utf8":
        (case_dir / "m.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def _prepared(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The case copied, completed and made the working directory; its expected line."""
    work = tmp_path / "bad"
    shutil.copytree(CORPUS / case, work / case)
    _complete(work / case, tmp_path / "outside.bin")
    monkeypatch.chdir(work)
    expected = (work / case / "expected.txt").read_text().strip()
    (work / case / "expected.txt").unlink()
    return expected


@pytest.mark.parametrize("case", CASES)
def test_broken_manifest(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    expected = _prepared(case, tmp_path, monkeypatch)

    code = main(["validate", case])

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1
    assert lines[0] == expected
    assert lines[-1].startswith("1 error in ")
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("case", CASES)
def test_broken_manifest_as_json_and_github(case: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The same first problem, as documented JSON and as a GitHub annotation."""
    import json

    from jsonschema import Draft202012Validator

    expected = _prepared(case, tmp_path, monkeypatch)
    assert main(["validate", case, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    schema = json.loads((Path(__file__).parent.parent / "schemas" /
                         "diagnostics.schema.json").read_text())
    Draft202012Validator(schema).validate(report)
    first = report["diagnostics"][0]
    where = f"{first['file']}:{first['line']}:{first['column']}" if first["line"] else \
        first["file"]
    assert f"{where}: {first['severity']}: {first['message']}" == expected
    assert report["valid"] is False
    assert main(["validate", case, "--format", "github"]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"::error file={first['file'].replace(':', '%3A')}")
