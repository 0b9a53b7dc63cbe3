"""Schema validators: compiled once, their bytecode kept and used again, never trusted blindly."""

from __future__ import annotations

from pathlib import Path

import fastjsonschema
import pytest

from iotc_apply import validators

SCHEMA = {"type": "object", "required": ["name"], "additionalProperties": False,
          "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "__pycache__"
    monkeypatch.setattr(validators, "CACHE", folder)
    return folder


def _checks(validate: object) -> None:
    validate({"name": "abc"})  # type: ignore[operator]
    for bad in ({}, {"name": "ABC"}, {"name": "abc", "extra": 1}, []):
        with pytest.raises(fastjsonschema.JsonSchemaException):
            validate(bad)  # type: ignore[operator]


def test_a_validator_is_compiled_once_and_its_bytecode_used_again(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _checks(validators.compiled(SCHEMA))
    (kept,) = cache.iterdir()
    assert kept.name.startswith("validator-") and kept.stat().st_mode & 0o777 == 0o644

    def no_generation(*args: object, **kwargs: object) -> str:
        raise AssertionError("generated again")

    monkeypatch.setattr(fastjsonschema, "compile_to_code", no_generation)
    _checks(validators.compiled(SCHEMA))
    assert list(cache.iterdir()) == [kept]


def test_another_schema_is_another_validator(cache: Path) -> None:
    validators.compiled(SCHEMA)
    other = {**SCHEMA, "properties": {"name": {"type": "string", "pattern": "^[A-Z]+$"}}}
    validate = validators.compiled(other)
    validate({"name": "ABC"})
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate({"name": "abc"})
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_or_foreign_cache_file_is_compiled_over(cache: Path) -> None:
    validators.compiled(SCHEMA)
    (kept,) = cache.iterdir()
    for junk in (b"", b"garbage", b"\xe9\x00\x00\x00\x00"):  # nothing, noise, a marshalled int
        kept.write_bytes(junk)
        _checks(validators.compiled(SCHEMA))
        assert kept.read_bytes() not in (b"", b"garbage", b"\xe9\x00\x00\x00\x00")


def test_a_folder_that_cannot_be_written_costs_only_time(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(validators, "CACHE", blocker / "__pycache__")
    _checks(validators.compiled(SCHEMA))
    assert blocker.read_text() == "not a folder"
