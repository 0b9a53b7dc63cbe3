"""Loading manifests: the examples, DeviceSet expansion, template sources, safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from iotc_apply.cli import main
from iotc_apply.manifest import load
from iotc_apply.manifest.checks import globs_overlap
from iotc_apply.manifest.yamlsafe import load_text
from iotc_apply.model import (
    Address,
    DesiredDevice,
    DesiredFirmware,
    DesiredTemplate,
    DesiredUpgrade,
    Kind,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "manifests"
SCHEMAS = ROOT / "schemas"


def test_examples_load_cleanly_into_the_expected_fleet() -> None:
    loaded = load([str(EXAMPLES)])
    assert loaded.diagnostics == ()
    d = loaded.desired
    assert [t.code for t in d.of(DesiredTemplate)] == ["gateway01", "sensor01"]
    devices = d.of(DesiredDevice)
    assert len(devices) == 60 and sum(1 for x in devices if x.device_set == "load-test") == 50
    lt = d.resources[Address(Kind.DEVICE, "lt-0007")]
    assert isinstance(lt, DesiredDevice)
    assert (lt.display_name, lt.entity, lt.template) == ("Load test sensor 7", "Plant-B",
                                                         "sensor01")
    assert d.resources[Address(Kind.DEVICE, "th-lab-07")].active is False  # type: ignore
    fw = d.resources[Address(Kind.FIRMWARE, "SENSORFW")]
    assert isinstance(fw, DesiredFirmware) and [u.version for u in fw.upgrades] == [
        "1.0.0", "1.1.0"]
    up = d.resources[Address(Kind.UPGRADE, "SENSORFW@1.0.0")]
    assert isinstance(up, DesiredUpgrade) and up.release and up.files[0].name == \
        "sensor-1.0.0.bin" and len(up.files[0].md5) == 32
    gateway = d.resources[Address(Kind.TEMPLATE, "gateway01")]
    assert isinstance(gateway, DesiredTemplate)
    # from the exported JSON, with the spec's name overriding it
    assert (gateway.name, gateway.auth_type, gateway.data_frequency) == (
        "Trailer gateway", "self-signed", 30)
    assert [a.name for a in gateway.attributes] == ["uplink_rssi", "gps"]
    assert d.project is not None and d.project.prune.devices == ("lt-*", "th-lab-*", "gw-*")
    assert str(d.origins[Address(Kind.DEVICE, "gw-0002")]).endswith("devices.yaml:15:9")


def _documents() -> list[tuple[Path, dict]]:  # type: ignore[type-arg]
    out = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        out += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def test_every_example_validates_with_plain_jsonschema() -> None:
    resources = [(f"https://github.com/iotc-apply/iotc-apply/schemas/{p.name}",
                  Resource.from_contents(json.loads(p.read_text())))
                 for p in SCHEMAS.glob("*.schema.json")]
    registry = Registry().with_resources(resources)
    manifest = json.loads((SCHEMAS / "manifest.schema.json").read_text())
    validator = Draft202012Validator(manifest, registry=registry)
    docs = _documents()
    assert len(docs) == 15
    for path, doc in docs:
        kind_schema = json.loads((SCHEMAS / f"{doc['kind'].lower()}.schema.json").read_text())
        assert list(Draft202012Validator(kind_schema).iter_errors(doc)) == [], path
        assert list(validator.iter_errors(doc)) == [], path
        header = path.read_text().splitlines()[0]
        assert header == f"# yaml-language-server: $schema=../../schemas/" \
                         f"{doc['kind'].lower()}.schema.json"
    broken = {**docs[0][1], "kind": "Device", "spec": {"colour": "red"}}
    assert list(validator.iter_errors(broken))  # the combined schema does dispatch on kind


def test_validate_prints_a_summary_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "Valid: 6 files, 15 documents, 65 resources."
    assert captured.err == ""


def test_one_run_reports_every_problem(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Devcie\nmetadata: {name: x}\nspec: {}\n---\n"
        "apiVersion: iotc/v1\nkind: Device\nmetadata: {name: y}\nspec: {template: nope}\n")
    (tmp_path / "b.yaml").write_text("apiVersion: iotc/v1\nkind: Firmware\n"
                                     "metadata: {name: fw}\nspec: {}\n")
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": error: ")[0].rsplit("/", 1)[1] for line in err[:-1]] == [
        "a.yaml:2:7", "a.yaml:9:18", "b.yaml:3:18", "b.yaml:4:7", "b.yaml:4:7", "b.yaml:4:7"]
    assert err[-2].endswith("b.yaml:4:7: error: spec: missing required field 'upgrades'")
    assert err[-1] == "6 errors in 2 files, 3 documents."


def test_missing_path_and_empty_directory(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["validate", str(tmp_path)]) == 1
    assert "no manifest files (*.yaml, *.yml) found" in capsys.readouterr().err


def test_a_manifest_symlinked_from_outside_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text((EXAMPLES / "templates.yaml").read_text())
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "linked.yaml")
    loaded = load([str(root)])
    assert [d.message for d in loaded.diagnostics] == [
        "is a symlink that leads outside the manifest root"]


def test_deviceset_numbering_and_display_names(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        (EXAMPLES / "templates.yaml").read_text() + "---\napiVersion: iotc/v1\nkind: "
        "DeviceSet\nmetadata: {name: s}\nspec:\n  count: 3\n  start: 98\n  uniqueId: "
        "'x{index:03}y'\n  template: sensor01\n")
    loaded = load([str(tmp_path)])
    assert loaded.diagnostics == ()
    names = [(d.duid, d.display_name) for d in loaded.desired.of(DesiredDevice)]
    assert names == [("x098y", "x098y"), ("x099y", "x099y"), ("x100y", "x100y")]


def test_aliases_within_bounds_are_fine_and_positions_are_kept() -> None:
    docs, diags = load_text("a: &x {k: [1, 2]}\nb: *x\nc: 'text'\n", "f.yaml")
    assert diags == [] and docs[0].value == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]},
                                             "c": "text"}
    assert str(docs[0].where(("c",))) == "f.yaml:3:4"
    assert str(docs[0].where(("a", "k", 1))) == "f.yaml:1:15"


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("lt-*", "lt-00*", True), ("lt-*", "gw-*", False), ("*", "anything", True),
    ("gw-0001", "gw-*", True), ("a*z", "b*z", False), ("*-old", "*-new", False),
    ("sensor?", "sensor1", True), ("x", "y", False)])
def test_glob_overlap(a: str, b: str, overlap: bool) -> None:
    assert globs_overlap(a, b) is overlap and globs_overlap(b, a) is overlap


def test_scalars_load_as_the_yaml_core_schema_says() -> None:
    text = ("a: 017\nb: 1_000\nc: -3\nd: 0x1F\ne: 1.5\nf: yes\ng: ~\nh: 2024-01-01\n"
            "i: '12'\nj: !!str 12\nk: 0\nl: 12\nm: +7\nn: .inf\n")
    docs, diags = load_text(text, "f.yaml")
    expected = yaml.safe_load(text)
    expected["h"] = "2024-01-01"  # timestamps stay text: manifests have no dates
    assert diags == [] and docs[0].value == expected


@pytest.mark.parametrize(("text", "message"), [
    ("a: *nowhere\n", "1:4: error: undefined YAML alias 'nowhere'"),
    ("a: &x [1, *x]\n", "1:11: error: a YAML alias refers to itself"),
    ("a: !!set {x}\n", "1:4: error: unsupported YAML tag 'tag:yaml.org,2002:set'"),
    ("? [k]\n: v\n", "1:3: error: mapping keys must be strings (quote it)"),
    ("a: 1\na: 2\n", "2:1: error: duplicate key 'a'"),
    ("a: " + "[" * 65 + "]" * 65 + "\n", "1:67: error: nested deeper than 64 levels"),
])
def test_loader_refusals_are_located(text: str, message: str) -> None:
    docs, diags = load_text(text, "f.yaml")
    assert docs == [] and [str(d) for d in diags] == [f"f.yaml:{message}"]


def _limited_loader(limit: int) -> type:
    """A parser that stops at `limit` levels the way libyaml 0.2.6 (PyYAML 6.0.4) does: its
    scanner's own error, raised while scanning ahead of the events the builder has seen."""

    class Limited(yaml.SafeLoader):
        def fetch_flow_collection_start(self, token_class: type) -> None:
            if self.flow_level >= limit:
                raise yaml.scanner.ScannerError("while increasing flow level", None,
                                                "exceeded maximum nesting depth",
                                                self.get_mark())
            super().fetch_flow_collection_start(token_class)

    return Limited


@pytest.mark.parametrize("loader", ["compiled", "pure", "limit 10", "limit 70", "limit 1000"])
@pytest.mark.parametrize("depth", [63, 64, 5_000])
def test_the_depth_refusal_does_not_depend_on_libyaml(
        loader: str, depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Level 65 is refused where it opens, in the loader's words, whether the parser is
    libyaml of any version, pure Python, or one whose own nesting limit fires first (PyYAML
    6.0.4's libyaml did, at column 1006 of a line nested 50,000 deep); level 64 loads. The
    document's mapping is level 1, so `depth` brackets make depth + 1 levels."""
    from iotc_apply.manifest import yamlsafe

    chosen = {"compiled": getattr(yaml, "CSafeLoader", yaml.SafeLoader),
              "pure": yaml.SafeLoader}.get(loader) or _limited_loader(int(loader.split()[1]))
    monkeypatch.setattr(yamlsafe, "Loader", chosen)
    docs, diags = load_text("a: 1\n---\nb: " + "[" * depth + "]" * depth + "\n", "f.yaml")
    if depth + 1 <= 64:
        assert [str(d) for d in diags] == [] and len(docs) == 2
    else:
        assert [str(d) for d in diags] == ["f.yaml:3:67: error: nested deeper than 64 levels"]
        assert [d.value for d in docs] == [{"a": 1}]


def test_a_refused_document_leaves_the_others_loaded() -> None:
    docs, diags = load_text("a: 1\n---\nb: *x\n---\nc: 3\n", "f.yaml")
    assert [d.value for d in docs] == [{"a": 1}, {"c": 3}] and len(diags) == 1
    assert [d.index for d in docs] == [0, 2]


def test_the_compiled_and_the_wording_schema_checks_agree() -> None:
    """fastjsonschema decides what is valid; jsonschema only words errors. They must agree on
    every document the project has: examples, scenarios and the broken corpus."""
    from iotc_apply.manifest.schema import KIND_SCHEMAS, is_valid, validator

    root = Path(__file__).parent
    files = [*EXAMPLES.rglob("*.yaml"), *(root / "scenarios").rglob("*.yaml"),
             *(root / "manifests").rglob("*.yaml")]
    checked = valid = 0
    for file in files:
        docs, _ = load_text(file.read_text(errors="replace"), str(file))
        for doc in docs:
            kind = doc.value.get("kind") if isinstance(doc.value, dict) else None
            if kind not in KIND_SCHEMAS:
                continue
            full = not any(True for _ in validator(kind).iter_errors(doc.value))
            assert is_valid(kind, doc.value) is full, (file, doc.index)
            checked += 1
            valid += full
    assert checked > 100 and 0 < valid < checked


@pytest.mark.parametrize(("text", "expected"), [
    ("a:\n\tb: 1\n", "f.yaml:2:1: error: invalid YAML: found character that cannot start any "
     "token; YAML indents with spaces; replace the tab"),
    ("spec:\n  name: x\n bad: 1\n", "f.yaml:3:2: error: invalid YAML: did not find expected "
     "key; indent this line like the lines above it at the same level, or quote a value that "
     "contains ': '"),
    ("a: 1\nb: \"open\nc: 2\nd: 3\ne: 4\nf: 5\n", "f.yaml:2:4: error: invalid YAML: a quoted "
     "string is not closed; add the closing quote"),
])
def test_yaml_mistakes_get_a_hint_where_they_start(text: str, expected: str) -> None:
    docs, diags = load_text(text, "f.yaml")
    assert [str(d) for d in diags] == [expected]


def test_only_documents_with_a_reference_are_walked_for_variables() -> None:
    """The builder marks a document whose strings may hold `${...}` (an alias copying one
    counts, a number or a quoted escape is judged by its text); the rest skip the walk."""
    from iotc_apply.manifest.yamlsafe import Document, load_text

    docs, diags = load_text("a: plain\nb: 12\n---\na: '${x}'\n---\nv: &r \"x-${y}\"\nw: *r\n"
                            "---\nk: $${escaped}\n", "m.yaml")
    assert diags == [] and [d.references for d in docs] == [False, True, True, True]
    assert Document({"a": "${x}"}, "made.yaml", 0).references  # not built here: walked
