"""Strings from the account and from pull requests are shown, written and matched as data,
never obeyed: terminal escapes, markdown that would close a fence, workflow commands, path
segments, `${`, redirects and oversized downloads (issue 24). Each test fails on the code
before it: the hostile value reached the output, the file system or memory as it was."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from iotc_apply.client import IoTConnect
from iotc_apply.emulator import EmulatorServer
from iotc_apply.ui.inert import fence, inert, markdown_text, workflow_safe

from .support import iotc, live, template

HOSTILE = ("Pump \x1b]0;owned\x07\x1b[2J\x9b31m\nNo changes.\n```\n### ok @ops\n![x](h://e) "
           "<img>\n::warning::f")  # under the service's 100 characters


def _no_raw_controls(text: str) -> None:
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text[:300])


@pytest.fixture
def hostile(work: Path, api: IoTConnect, capsys: pytest.CaptureFixture[str]) -> Path:  # noqa: F811
    """The examples applied, then one declared device renamed in the account (an update the
    plan shows) and one undeclared device added (a `?` line), both with HOSTILE names."""
    assert iotc("apply", "m", "--auto-approve") == 0
    device = api.devices.get_by_duid("th-lab-01")
    assert device is not None
    api.devices.update(device.guid, "th-lab-01", HOSTILE, api.entities.root().guid)
    capsys.readouterr()
    return work


def test_plan_text_shows_hostile_names_escaped(hostile: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m") == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert "\\u001b]0;owned\\u0007\\u001b[2J\\x9b31m\\nNo changes.\\n```" in out
    assert not any(line.startswith(("No changes.", "###", "::")) for line in out.splitlines())


def test_plan_markdown_cannot_be_forged(hostile: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m", "--format", "markdown") == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    lines = out.splitlines()
    assert not any(line.startswith(("###", "No changes.", "::", "![", "<img")) for line in
                   lines[1:]), out
    # every fence closes with the same mark it opened with, and only there
    fences = [line for line in lines if line.startswith("```")]
    assert len(fences) % 2 == 0 and all(len(f.removesuffix("diff")) >= 4 for f in fences), fences


def test_plan_json_keeps_the_value_escaped(hostile: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert iotc("plan", "m", "--format", "json") == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    plan = json.loads(out)
    (change,) = [c for c in plan["changes"] if c["address"] == "device/th-lab-01"]
    assert change["before"]["displayName"] == HOSTILE  # data, exactly as the account has it


@pytest.mark.parametrize("output", ["table", "wide", "json", "yaml"])
def test_get_shows_hostile_names_inert(hostile: Path, output: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.cli import main

    assert main(["get", "devices", "th-lab-01", "-o", output]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    if output == "json":
        assert json.loads(out)[0]["displayName"] == HOSTILE
    elif output == "yaml":
        assert yaml.safe_load(out)[0]["displayName"] == HOSTILE
    else:
        assert len(out.splitlines()) == 2 and "\\x1b]0;owned" in out


def test_the_renderers_escape_what_they_are_given() -> None:
    assert inert("a\x1b[2Jb\tc\nd\x7f\x9b\u202e") == "a\\x1b[2Jb\tc\nd\\x7f\\x9b\\u202e"
    assert inert("a\nb", one_line=True) == "a\\x0ab"
    assert markdown_text("a|b <i> @team `x` [l](u)") == \
        "a\\|b &lt;i&gt; @&#8203;team \\`x\\` \\[l\\](u)"
    assert fence(["x ```` y", "z"], "diff") == "`````diff\nx ```` y\nz\n`````"
    assert workflow_safe("::warning::x") == " ::warning::x" and workflow_safe("ok") == "ok"


# -- export: live names never become paths outside OUT, `${` stays text --------------------


def _rename(server: EmulatorServer, kind: str, guid: str, field: str, value: str) -> None:
    """What a service that does not validate names would hold (the emulator validates)."""
    store = server.emulator.state.store
    with store.lock, store.transaction():
        record = store.get(kind, guid)
        assert record is not None
        store.update(kind, {**record, field: value})


def test_export_never_writes_outside_out(work: Path, server: EmulatorServer,  # noqa: F811
                                         api: IoTConnect,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """An upload named `../../../../.bashrc` (accepted by the ordinary file API), a template
    code and a firmware name with `../`: each object is skipped with a warning naming it,
    the rest is exported, nothing lands outside OUT."""
    from iotc_apply.client import FIRMWARE_MODULE

    from .support import self_signed_pem

    home = work / "home"
    (home / "deep" / "er").mkdir(parents=True)
    (home / ".bashrc").write_text("mine\n")
    sensor = api.templates.create(template("sensor01"))
    _, first = api.firmware.create(sensor, "SENSORFW", "1.0", "1.0.0")
    api.files.upload(FIRMWARE_MODULE, first, "../../../../.bashrc", b"echo owned\n")
    other = api.templates.create(template("other01", "Other"))
    api.devices.create(other, "od-1", "od-1", api.entities.root().guid, self_signed_pem("od-1"))
    _rename(server, "template", other, "code", "../../../x")
    good = api.templates.create(template("good01", "Good"))
    fw2, _ = api.firmware.create(good, "GOODFW", "1.0", "1.0.0")
    _rename(server, "firmware", fw2, "name", "../../up")
    api.devices.create(good, "g-1", "Pump ${var.x} and $${y}", api.entities.root().guid,
                       self_signed_pem("g-1"))
    capsys.readouterr()

    from iotc_apply.cli import main

    assert main(["export", str(home / "deep" / "er" / "out"), "--keys-dir", "keys"]) == 0
    captured = capsys.readouterr()
    assert (home / ".bashrc").read_text() == "mine\n"
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", "deep"]
    assert sorted(p.name for p in (home / "deep").iterdir()) == ["er"]
    out = home / "deep" / "er" / "out"
    assert all(p.resolve().is_relative_to(out) for p in out.rglob("*"))
    warnings = [line for line in captured.out.splitlines() if line.startswith("warning:")]
    assert any("firmware/SENSORFW: skipped: upgrade 1.0.0: file name '../../../../.bashrc'"
               in w for w in warnings), warnings
    assert any("template/../../../x: skipped" in w for w in warnings), warnings
    assert any("firmware/../../up: skipped: its name is not a valid firmware name" in w
               for w in warnings), warnings
    # `${` in a live string is written escaped, so the tree validates and plans clean
    assert "Pump $${var.x} and $$${y}" in (out / "devices-good01.yaml").read_text()
    assert main(["validate", str(out)]) == 0
    capsys.readouterr()
    assert main(["plan", str(out), "--keys-dir", "keys", "--target", "device/g-1",
                 "--detailed-exitcode"]) == 0


def test_export_refuses_a_symlinked_folder_in_out(work: Path, api: IoTConnect,  # noqa: F811
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.cli import main
    from iotc_apply.client import FIRMWARE_MODULE


    sensor = api.templates.create(template("sensor01"))
    _, first = api.firmware.create(sensor, "SENSORFW", "1.0", "1.0.0")
    api.files.upload(FIRMWARE_MODULE, first, "a.bin", b"bits")
    (work / "elsewhere").mkdir()
    (work / "out").mkdir()
    (work / "out" / "files").symlink_to(work / "elsewhere")
    assert main(["export", "out", "--force", "--keys-dir", "keys"]) == 1
    err = capsys.readouterr().err
    assert "is a symlink; nothing is written through one" in err
    assert list((work / "elsewhere").iterdir()) == []


# -- downloads: every redirect hop checked, bodies streamed under a cap ---------------------


@pytest.fixture
def storage() -> Iterator[tuple[str, dict[str, tuple[int, dict[str, str], bytes]]]]:
    """A loopback HTTP server answering each path as the test says: (status, headers, body)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status, headers, body = routes.get(self.path.split("?")[0], (404, {}, b""))
            self.send_response(status)
            for k, v in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


def _session(api: IoTConnect, **settings: object) -> IoTConnect:
    from dataclasses import replace

    from iotc_apply.client import ApiSession
    from iotc_apply.client.settings import TokenStore

    changed = replace(api.session.settings, **settings)
    return IoTConnect(ApiSession(changed, TokenStore.for_settings(changed)))


def test_a_download_follows_redirects_only_on_its_own_host(
        storage: tuple[str, dict], api: IoTConnect, tmp_path: Path) -> None:
    from iotc_apply.client.errors import TransportError

    base, routes = storage
    port = base.rsplit(":", 1)[1]
    routes["/a"] = (302, {"Location": "/b?sig=1"}, b"")
    routes["/b"] = (200, {}, b"the bits")
    routes["/away"] = (302, {"Location": f"http://localhost:{port}/b"}, b"")
    routes["/out"] = (301, {"Location": "https://example.invalid/b"}, b"")
    routes["/loop"] = (302, {"Location": "/loop"}, b"")
    path, digest = api.files.download(f"{base}/a?sig=secret", tmp_path)
    assert path.read_bytes() == b"the bits" and path.parent == tmp_path
    import hashlib
    assert digest == hashlib.md5(b"the bits").hexdigest()
    path.unlink()
    for start, words in (("/away", "redirects to another host or scheme"),
                         ("/out", "redirects to another host or scheme"),
                         ("/loop", "more than 5 redirects")):
        with pytest.raises(TransportError) as caught:
            api.files.download(f"{base}{start}?sig=secret", tmp_path)
        assert words in str(caught.value) and "secret" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_download_stops_at_the_size_cap_and_leaves_nothing(
        storage: tuple[str, dict], api: IoTConnect, tmp_path: Path) -> None:
    from iotc_apply.client.errors import TransportError

    base, routes = storage
    routes["/big"] = (200, {}, b"x" * 5000)
    routes["/liar"] = (200, {"Content-Length": "10"}, b"")  # declares 10, streams less
    small = _session(api, max_download_bytes=1000)
    with pytest.raises(TransportError) as caught:
        small.files.download(f"{base}/big", tmp_path)
    assert "5,000 bytes, more than the 1,000 allowed (IOTC_MAX_DOWNLOAD_BYTES)" in \
        str(caught.value)
    assert list(tmp_path.iterdir()) == []
    path, _ = _session(api, max_download_bytes=6000).files.download(f"{base}/big", tmp_path)
    assert path.stat().st_size == 5000


def test_url_credentials_are_never_shown() -> None:
    """User-info and a signed URL's query are credentials: redacted in traces and errors."""
    from iotc_apply.client.auth import _check_discovery_url
    from iotc_apply.client.errors import ConfigError
    from iotc_apply.client.redact import redact_text

    assert redact_text("-> GET https://bob:hunter2@files.example/a/b.bin?se=1&sig=abc def") == \
        "-> GET https://(redacted)@files.example/a/b.bin?(redacted) def"
    with pytest.raises(ConfigError) as caught:
        _check_discovery_url("ftp://bob:hunter2@discovery.example/api?token=zz")
    assert "hunter2" not in str(caught.value) and "zz" not in str(caught.value)


# -- bounds in bytes -------------------------------------------------------------------------


def test_aliases_are_bounded_by_the_bytes_they_copy() -> None:
    """20 aliases of a 1 MB scalar: few nodes, 20 MB of copies; refused where the bound is
    passed, in a fraction of a second."""
    import time

    from iotc_apply.manifest.yamlsafe import load_text

    text = "a: &big '" + "x" * 1_000_000 + "'\nb: [" + ", ".join(["*big"] * 20) + "]\n"
    started = time.perf_counter()
    docs, diags = load_text(text, "f.yaml")
    assert time.perf_counter() - started < 2
    assert docs == [] and [str(d) for d in diags] == [
        "f.yaml:2:" + str(5 + 6 * 8) + ": error: YAML aliases expand to more than "
        "8,388,608 bytes (an alias bomb?)"]


def test_a_reference_repeated_by_aliases_cannot_fill_memory(tmp_path: Path) -> None:
    """A `${var}` in an aliased scalar, its value 100 KB: 1,000 aliases would substitute
    100 MB (once 4 GB and a MemoryError); refused at the document, located."""
    from iotc_apply.manifest import load
    from iotc_apply.manifest.variables import Given

    (tmp_path / "m.yaml").write_text(
        "apiVersion: iotc/v1\nkind: Variables\nmetadata: {name: v}\nspec:\n  variables:\n"
        "    big: {type: string}\n---\napiVersion: iotc/v1\nkind: Template\n"
        "metadata: {name: t1}\nspec:\n  name: &n 'x${var.big}'\n  authType: self-signed\n"
        "  attributes: [{name: a, type: DECIMAL}]\n  commands: [" +
        ", ".join(["{name: *n, command: c}"] * 1_000) + "]\n")
    loaded = load([str(tmp_path)], Given(flags={"big": "y" * 100_000}))
    messages = [str(d) for d in loaded.diagnostics]
    assert len(messages) == 1 and "variables expand this document by more than 8,388,608 " \
        "bytes" in messages[0] and messages[0].startswith(f"{tmp_path / 'm.yaml'}:"), messages


def test_the_size_check_comes_before_any_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO manifest (a read would hang) and one over the limit (sparse: 6 GB read whole
    was a MemoryError): refused from stat alone, by validate and by the plan's digest."""
    import os

    from iotc_apply.cli import main
    from iotc_apply.manifest.files import ManifestFile, file_digest_line

    os.mkfifo(tmp_path / "fifo.yaml")
    with (tmp_path / "huge.yaml").open("wb") as f:
        f.truncate(6 * 1024 ** 3)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "."]) == 1
    err = capsys.readouterr().err
    assert "fifo.yaml: error: not a regular file" in err
    assert "huge.yaml: error: file is 6442450944 bytes; manifests are limited to 4194304" in err
    for name in ("fifo.yaml", "huge.yaml"):
        line = file_digest_line(ManifestFile(tmp_path / name, name, tmp_path), ["."])
        assert b"refused" in line


@pytest.mark.parametrize("number", ["9" * 5_000, "9223372036854775808", "-0x8000000000000001"])
def test_integers_past_64_bits_are_located_errors(number: str) -> None:
    from iotc_apply.manifest.yamlsafe import load_text

    docs, diags = load_text(f"a: 1\nb: {number}\n", "f.yaml")
    assert docs == [] and len(diags) == 1
    assert str(diags[0]).startswith("f.yaml:2:4: error: integer ") and \
        "is outside what the service stores (64-bit integers)" in str(diags[0])


# -- case: one device whatever the spelling ---------------------------------------------------


@pytest.mark.usefixtures("applied")
def test_a_case_only_change_is_a_located_plan_error_never_delete_and_create(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """The example DeviceSet `lt-{index:04}` (50 devices) re-spelled `LT-{index:04}`: on
    the code before, 50 deletes and 50 creates with new keys."""
    capsys.readouterr()
    devices = Path("m/fleet.yaml")
    text = devices.read_text()
    assert 'uniqueId: "lt-{index:04}"' in text
    devices.write_text(text.replace('uniqueId: "lt-{index:04}"', 'uniqueId: "LT-{index:04}"'))
    assert iotc("plan", "m", "--format", "json") == 1
    plan = json.loads(capsys.readouterr().out)
    assert [c for c in plan["changes"] if c["action"] in ("create", "delete")] == []
    assert len(plan["errors"]) == 50
    first = plan["errors"][0]
    assert (first["code"], first["address"]) == ("case-only", "device/LT-0001")
    assert re.fullmatch(r"m/fleet\.yaml:\d+:\d+", first["where"]), first
    assert re.fullmatch(r"m/fleet\.yaml:\d+:\d+: device/LT-0001: the account has this "
                        r"device as 'lt-0001' \(unique IDs are compared without case and "
                        r"cannot be renamed\); write 'lt-0001' in the manifest",
                        first["text"]), first


@pytest.mark.usefixtures("applied")
def test_protect_and_match_globs_ignore_case(work: Path, server: EmulatorServer,  # noqa: F811
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.cli import main

    capsys.readouterr()
    assert main(["get", "devices", "LT-000*", "-o", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 9
    project = Path("m/project.yaml")
    project.write_text(project.read_text() + "  protect:\n    devices: [LT-000*]\n")
    assert iotc("destroy", "m", "--match", "device/LT-0001", "--auto-approve") == 0
    out = capsys.readouterr()
    assert "device/lt-0001: protected (Project.protect); left in place" in out.out + out.err
    assert iotc("destroy", "m", "--match", "device/LT-0050", "--auto-approve") == 0
    capsys.readouterr()
    assert "lt-0050" not in {d["uniqueId"] for d in live(server)["device"]}


# -- a committed key store is untrusted ------------------------------------------------------


@pytest.mark.parametrize("planted", ["dev-zero", "fifo", "huge"])
def test_plan_reads_kept_certificates_without_following_or_hanging(
        work: Path, server: EmulatorServer, planted: str,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """A `cert.pem` that is a symlink to /dev/zero (memory), a FIFO (a hang) or 100 MB:
    plan skips it for its expiry warning at once; apply refuses it with one line."""
    import os
    import time

    from .support import account_keys

    assert iotc("apply", "m", "--auto-approve") == 0
    capsys.readouterr()
    cert = account_keys(server, work / "keys") / "th-lab-01" / "cert.pem"
    cert.unlink()
    if planted == "dev-zero":
        cert.symlink_to("/dev/zero")
    elif planted == "fifo":
        os.mkfifo(cert)
    else:
        with cert.open("wb") as f:
            f.truncate(100 * 1024 * 1024)
    started = time.perf_counter()
    assert iotc("plan", "m", "--detailed-exitcode") == 0
    assert time.perf_counter() - started < 20
    assert "No changes." in capsys.readouterr().out
    from iotc_apply.keystore import KeyStore, kept_cert_text

    assert KeyStore  # the store the CLI uses; its reader refuses the planted file
    with pytest.raises(Exception) as caught:
        kept_cert_text(cert)
    assert "symlink" in str(caught.value) or "not a regular file" in str(caught.value) or \
        "larger than 65,536 bytes" in str(caught.value)


def test_export_writes_hostile_names_as_data(hostile: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from iotc_apply.cli import main

    assert main(["export", "out", "--keys-dir", "keys"]) == 0
    capsys.readouterr()
    texts = {p.name: p.read_text() for p in Path("out").glob("*.yaml")}
    for text in texts.values():
        _no_raw_controls(text)
    docs = [d for t in texts.values() for d in yaml.safe_load_all(t)]
    (device,) = [d for d in docs if d["metadata"]["name"] == "th-lab-01"]
    assert device["spec"]["displayName"] == HOSTILE
    assert main(["validate", "out"]) == 0


# -- what the account will refuse is planned, never an internal error (issue 27, part) -------


def test_an_unconfirmed_data_type_is_a_validate_warning_and_a_plan_error(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """`type: LONG` validated, planned, then failed apply with `internal error: ValueError`."""
    from iotc_apply.cli import main

    templates = Path("m/templates.yaml")
    templates.write_text(templates.read_text().replace("type: DECIMAL", "type: LONG", 1))
    assert main(["validate", "m"]) == 0
    assert "warning: attribute 'temperature': data type LONG is not confirmed" in \
        capsys.readouterr().err
    assert iotc("apply", "m", "--auto-approve") == 1
    captured = capsys.readouterr()
    assert "error: template/sensor01: attribute 'temperature': data type LONG is not offered " \
        "by this account (it offers BOOLEAN, DECIMAL, INTEGER, NUMBER, OBJECT, STRING)" in \
        captured.out
    assert "internal error" not in captured.err + captured.out


def test_a_template_name_another_live_template_holds_is_a_plan_error(
        work: Path, api: IoTConnect, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811

    api.templates.create(template("other01", "cold-chain SENSOR"))
    assert iotc("plan", "m") == 1
    assert "template/sensor01: the name 'Cold-chain sensor' is taken by the live " \
        "template/other01 (template names are unique in an account)" in capsys.readouterr().out


def test_refusals_the_client_could_not_read_are_worded(storage: tuple[str, dict],
                                                       api: IoTConnect) -> None:
    """ASP.NET's ProblemDetails 400 surfaced as "no message"; a proxy's HTML 403 as a bare
    non-JSON body (issue 27, part)."""
    from iotc_apply.client.envelope import _error_details, parse
    from iotc_apply.client.errors import StatusError

    assert _error_details({"type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                           "title": "One or more validation errors occurred.", "status": 400,
                           "errors": {"displayName": ["The displayName field is required."]}}) \
        == ("One or more validation errors occurred.; displayName: The displayName field is "
            "required.", ("displayName",))
    base, routes = storage
    routes["/firewall"] = (403, {"Content-Type": "text/html"},
                           b"<html><body>Access denied by policy</body></html>")
    with pytest.raises(StatusError) as caught:
        parse(__import__("requests").get(f"{base}/firewall", timeout=5), "GET", "/firewall",
              (200,))
    assert "a proxy or firewall between here and the service refused the request" in \
        str(caught.value)


@pytest.mark.usefixtures("applied")
def test_an_untagged_upgrade_file_is_kept_and_marked_unverified(
        work: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    from iotc_apply.cli import main

    (record,) = [f for f in live(server)["file"] if f["name"] == "sensor-1.1.0.bin"]
    _rename(server, "file", record["guid"], "tag", "")
    capsys.readouterr()
    assert main(["export", "out", "--keys-dir", "keys"]) == 0
    out = capsys.readouterr().out
    path = "files/SENSORFW/1.1.0/sensor-1.1.0.bin"
    assert f"warning: {path}: the service gave no MD5 for this file" in out
    assert f"# {path}: the service gave no MD5 for this file; its content is unverified" in \
        Path("out/firmware.yaml").read_text()
    assert Path("out", path).read_bytes() == Path("m/firmware/sensor-1.1.0.bin").read_bytes()
