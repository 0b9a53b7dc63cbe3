"""The thin HTTP path (client/thin.py) sends what requests sends and verifies TLS as
requests does: the same request bytes, certificate and host name checked, the same errors."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotc_apply.client.settings import Settings
from iotc_apply.client.thin import thin_enough
from iotc_apply.client.transport import Transport


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with a small JSON envelope, keep-alive."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"status": 200, "data": [], "message": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _certificate(tmp: Path, names: list[x509.GeneralName]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _serve_tls(cert: Path, key: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate names that address."""
    cert, key = _certificate(tmp_path, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    for url in _serve_tls(cert, key):
        yield url, cert


def _transport(ca_bundle: Path | None) -> Transport:
    return Transport(Settings(ca_bundle=str(ca_bundle) if ca_bundle else None, timeout=5.0))


def test_tls_is_verified_against_the_bundle_on_the_thin_path(tls: tuple[str, Path]) -> None:
    url, cert = tls
    kwargs = {"params": {"pageSize": 1}, "headers": {"Accept": "application/json"}}
    assert thin_enough(kwargs)
    answer = _transport(cert).send("GET", url + "/Device", "GET /Device", kwargs)
    assert (answer.status_code, answer.json()["message"]) == (200, "ok")
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        _transport(None).send("GET", url + "/Device", "GET /Device", kwargs)


def test_the_host_name_is_checked_on_the_thin_path(tmp_path: Path) -> None:
    """A certificate valid only for another name is refused, as requests refuses it."""
    cert, key = _certificate(tmp_path, [x509.DNSName("iotconnect.example")])
    for url in _serve_tls(cert, key):
        with pytest.raises(requests.exceptions.SSLError):
            _transport(cert).send("GET", url + "/x", "GET /x", {"params": None})


def _captured(send: callable) -> bytes:  # type: ignore[valid-type]
    """The bytes of one request as a server receives them (head and body)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    got: list[bytes] = []

    def accept() -> None:
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        got.append(head + b"\r\n\r\n" + body)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    send(f"http://127.0.0.1:{port}")
    thread.join(5)
    listener.close()
    return got[0]


def _normal(raw: bytes) -> tuple[bytes, frozenset[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    first, *headers = head.split(b"\r\n")
    # each capture listens on its own port: the Host header names it
    return first, frozenset(h.lower() for h in headers if not h.lower().startswith(b"host:")), \
        body


@pytest.mark.parametrize("method,kwargs", [
    ("GET", {"params": {"pageSize": 100, "pageNumber": 2, "UniqueId": "a b&c", "x": None},
             "headers": {"Accept": "application/json", "Authorization": "Bearer t"}}),
    ("POST", {"json": {"uniqueId": "d-1", "displayName": "Pump é", "n": [1, 2]},
              "headers": {"Accept": "application/json"}}),
    ("PUT", {"headers": {"Accept": "application/json"}}),
])
def test_the_thin_path_sends_the_bytes_requests_sends(method: str,
                                                      kwargs: dict[str, object]) -> None:
    thin = _captured(lambda url: Transport(Settings()).send(method, url + "/api/Device",
                                                           "x", dict(kwargs)))
    plain = _captured(lambda url: requests.Session().request(method, url + "/api/Device",
                                                             **kwargs))  # type: ignore[arg-type]
    assert _normal(thin) == _normal(plain)


def test_files_forms_and_streams_stay_on_requests() -> None:
    assert not thin_enough({"files": {"f": b"x"}})
    assert not thin_enough({"data": {"a": "b"}})
    assert not thin_enough({"stream": True, "allow_redirects": False})
    assert thin_enough({"params": None, "json": None, "data": None, "files": None,
                        "headers": {}})


class _Scripted:
    """A loopback server that answers each request with the next scripted reply and counts
    connections; after a reply marked `close`, it closes that connection unasked."""

    def __init__(self, replies: list[tuple[bytes, bool]]) -> None:
        self.replies = list(replies)
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.replies:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    reply, close = self.replies.pop(0)
                    conn.sendall(reply)
                    if close:
                        break

    def close(self) -> None:
        self.listener.close()


def _reply(body: bytes, encoding: str | None = None) -> bytes:
    extra = f"Content-Encoding: {encoding}\r\n".encode() if encoding else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra +
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def test_gzip_and_deflate_answers_are_decoded_and_a_garbled_one_is_a_connection_error() -> None:
    import gzip
    import zlib

    body = b'{"status": 200, "data": [1, 2, 3], "message": "ok"}'
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = raw.compress(body) + raw.flush()
    server = _Scripted([(_reply(gzip.compress(body), "gzip"), False),
                        (_reply(zlib.compress(body), "deflate"), False),
                        (_reply(raw_deflate, "deflate"), False),
                        (_reply(b"not gzip", "gzip"), True),
                        (_reply(body, "br"), True)])
    try:
        transport = _transport(None)
        for _ in range(3):
            answer = transport.send("GET", server.url + "/x", "GET /x", {"params": None})
            assert answer.json()["data"] == [1, 2, 3]
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                transport.send("GET", server.url + "/x", "GET /x", {"params": None})
    finally:
        server.close()


def test_a_kept_connection_is_reused_and_one_the_server_closed_is_not() -> None:
    body = b'{"status": 200, "data": [], "message": "ok"}'
    # two answers on one connection, then the server closes it unasked after the second
    server = _Scripted([(_reply(body), False), (_reply(body), True), (_reply(body), False)])
    try:
        transport = _transport(None)
        for _ in range(2):
            transport.send("GET", server.url + "/x", "GET /x", {"params": None})
        assert server.connections == 1
        import time

        time.sleep(0.2)  # the close reaches this side
        answer = transport.send("POST", server.url + "/x", "POST /x", {"json": {"a": 1}})
        assert answer.status_code == 200 and server.connections == 2
    finally:
        server.close()


def test_a_refused_connection_is_known_never_sent() -> None:
    """The retry layer repeats a POST only when it was never sent, and tells a refusal by
    urllib3's shape of the error (`NewConnectionError` under requests' ConnectionError)."""
    from iotc_apply.client.retry import _never_sent, _refused

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(requests.ConnectionError) as refused:
        _transport(None).send("POST", f"http://127.0.0.1:{port}/x", "POST /x", {"json": {}})
    assert _never_sent(refused.value) and _refused(refused.value)


def test_a_path_with_a_space_is_quoted_as_requests_quotes_it() -> None:
    """An env name is part of the discovery path: `no such env` went out raw (http.client
    refuses it), read as a dropped connection and retried for 9 s. (A URL that is not
    ASCII, an IDNA host say, goes through requests itself.)"""
    for path, line in (
            ("/api/env/no such env/a%20b", b"GET /api/env/no%20such%20env/a%20b?q=x+y HTTP/1.1"),
            ("/api/caf\u00e9", b"GET /api/caf%C3%A9?q=x+y HTTP/1.1")):
        thin = _captured(lambda url, path=path: Transport(Settings()).send(
            "GET", url + path, "x", {"params": {"q": "x y"}}))
        plain = _captured(lambda url, path=path: requests.Session().get(
            url + path, params={"q": "x y"}))
        assert _normal(thin) == _normal(plain)
        assert thin.split(b"\r\n")[0] == line


class _Moved(http.server.BaseHTTPRequestHandler):
    """Answers every request with a redirect to `target` (a path on another server)."""

    protocol_version = "HTTP/1.1"
    target = ""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _Counted(_Echo):
    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(self.path)
        super()._answer()

    do_GET = do_POST = _answer


def test_redirects_are_never_followed_and_say_where_they_point(tmp_path: Path) -> None:
    """On the thin path and on requests' (a form upload), a 3xx answer comes back as it
    is: the bearer token and a POST body do not travel to the place it names. The error
    says where that is, the discovery's without the solution key it carries."""
    from iotc_apply.client import IoTConnect
    from iotc_apply.client.envelope import parse
    from iotc_apply.client.errors import ConfigError, StatusError
    from iotc_apply.client.session import ApiSession
    from iotc_apply.client.settings import TokenStore

    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counted)
    _Moved.target = f"http://127.0.0.1:{elsewhere.server_address[1]}/solutionkey/SKEY-123/x"
    moved = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Moved)
    for server in (elsewhere, moved):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{moved.server_address[1]}"
    try:
        transport = Transport(Settings(timeout=5.0))
        thin = transport.send("POST", base + "/api/Device", "/Device",
                              {"json": {"a": 1}, "headers": {"Authorization": "Bearer t"}})
        form = transport.send("POST", base + "/api/upload", "/upload",
                              {"files": {"f": ("f.bin", b"x")}})
        for resp in (thin, form):
            assert resp.status_code == 307
            with pytest.raises(StatusError, match="redirected to http://127.0.0.1:.*/x; API "
                                                  "calls do not follow redirects"):
                parse(resp, "POST", "/Device", (200,))
        settings = Settings(discovery_url=f"{base}/api/uisdk", skey="SKEY-123", env="poc",
                            pf="aws", username="u@example.com", password="pw",
                            config_dir=tmp_path, timeout=5.0)
        with pytest.raises(ConfigError) as refused:
            IoTConnect(ApiSession(settings, TokenStore.for_settings(settings))).session \
                .auth.base_urls()
        assert "HTTP 307, redirected to http://127.0.0.1:" in str(refused.value)
        assert "SKEY-123" not in str(refused.value)
        assert _Counted.seen == []  # nothing reached the place the redirects named
    finally:
        for server in (elsewhere, moved):
            server.shutdown()
            server.server_close()
