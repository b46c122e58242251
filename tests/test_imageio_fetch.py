"""URL fetching: vetted addresses, redirects, limits, timeouts — against a real server on 127.0.0.1 only.

No test sends a packet anywhere but loopback: refused addresses are refused before any connection, and
the ``connections`` fixture records (and fails on) every connection attempt to another address.
"""

from __future__ import annotations

import http.server
import io
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore
import numpy as np
import pytest
import skimage.data
from PIL import Image

import server.outbound as fetch_module
from models.errors import ImageFetchError
from models.imageio import decode_image
from server.image_source import load_image_source
from server.outbound import FetchPolicy, fetch_url, refused_address_reason

LOOPBACK_ONLY = FetchPolicy(allow_private=True, timeout_s=5.0)


def photo_png() -> bytes:
    """A real photo as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


class ImageServer(http.server.ThreadingHTTPServer):
    """A local test server; handlers read these attributes."""

    daemon_threads = True
    image: bytes
    release: threading.Event
    hosts_seen: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-response is what the limit tests provoke."""


class Handler(http.server.BaseHTTPRequestHandler):
    """The test routes.

    /image.png, /redirect?to=URL, /chain/N (N + 1 redirects, then the image), /missing, /big-length,
    /big-chunked, /stall, /trickle, /slow-headers, /empty, /no-location.
    """

    protocol_version = "HTTP/1.1"
    server: ImageServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def send_body(self, status: int, body: bytes, content_type: str = "image/png") -> None:
        """Send a complete response with Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str | None) -> None:
        """Send a 302 (with or without a Location)."""
        self.send_response(302)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        """Answer one GET."""
        self.server.hosts_seen.append(self.headers.get("Host", ""))
        path = self.path
        try:
            if path == "/image.png":
                self.send_body(200, self.server.image)
            elif path.startswith("/redirect?to="):
                self.redirect(path.split("=", 1)[1])
            elif path.startswith("/chain/"):
                left = int(path.rsplit("/", 1)[1])
                self.redirect("/image.png" if left == 0 else f"/chain/{left - 1}")
            elif path == "/missing":
                self.send_body(404, b"not here", "text/plain")
            elif path == "/big-length":
                self.send_body(200, bytes(50_000))
            elif path == "/big-chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(50):
                    self.wfile.write(b"3e8\r\n" + bytes(1000) + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/stall":
                self.server.release.wait(10)
                self.send_body(200, self.server.image)
            elif path == "/trickle":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    if self.server.release.wait(0.05):
                        break
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
            elif path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(1000):
                    if self.server.release.wait(0.05):
                        break
                    self.wfile.write(b"X-Slow: 1\r\n")
                    self.wfile.flush()
            elif path == "/empty":
                self.send_body(200, b"")
            elif path == "/no-location":
                self.redirect(None)
            else:
                self.send_body(404, b"", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (size or time limit)


def start_server(server: ImageServer) -> threading.Thread:
    """Serve in a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    """An HTTP server on 127.0.0.1 (ephemeral port)."""
    instance = ImageServer(("127.0.0.1", 0), Handler)
    instance.image = photo_png()
    instance.release = threading.Event()
    instance.hosts_seen = []
    start_server(instance)
    yield instance
    instance.release.set()
    instance.shutdown()
    instance.server_close()


def url_of(server: ImageServer, path: str) -> str:
    """The server's URL for ``path``."""
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every TCP connection attempt; fail the test on any address other than 127.0.0.1."""
    attempts: list[str] = []
    real_connect = httpcore.SyncBackend.connect_tcp

    def recording_connect(self: httpcore.SyncBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        attempts.append(host)
        if host != "127.0.0.1":
            pytest.fail(f"a connection to {host} was attempted; only 127.0.0.1 may be contacted")
        return real_connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", recording_connect)
    return attempts


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], list[str]]:
    """Install a getaddrinfo that answers from a table (no real DNS); returns the list of lookups."""
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def install(table: dict[str, list[str]]) -> list[str]:
        def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
            if host == "127.0.0.1":  # the socket layer's own numeric lookup when connecting
                return real_getaddrinfo(host, port, *args, **kwargs)
            lookups.append(host)
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "unknown")
            answers = []
            for address in table[host]:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
                answers.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return answers

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return lookups

    return install


@pytest.fixture
def allow_only_loopback_127001(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the default (strict) policy accept exactly 127.0.0.1, so redirects to other refused
    addresses can be tested while all traffic stays on loopback."""
    real = fetch_module.refused_address_reason

    def patched(address: Any, *, allow_private: bool = False) -> str | None:
        if str(address) == "127.0.0.1":
            return None
        return real(address, allow_private=allow_private)

    monkeypatch.setattr(fetch_module, "refused_address_reason", patched)


# ---------------------------------------------------------------- success paths


def test_fetch_returns_bytes_when_private_allowed(server: ImageServer, connections: list[str]) -> None:
    body = fetch_url(url_of(server, "/image.png"), LOOPBACK_ONLY)
    assert body == server.image
    assert connections == ["127.0.0.1"]
    assert decode_image(body).source_format == "png"


def test_load_source_fetches_http_url(server: ImageServer, connections: list[str]) -> None:
    assert load_image_source(url_of(server, "/image.png"), LOOPBACK_ONLY) == server.image


def test_fetch_follows_redirects_within_limit(server: ImageServer, connections: list[str]) -> None:
    assert fetch_url(url_of(server, "/chain/3"), LOOPBACK_ONLY) == server.image


def test_fetch_resolves_once_and_connects_to_vetted_ip_with_original_host_header(
    server: ImageServer, connections: list[str], fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    lookups = fake_dns({"images.test": ["127.0.0.1"]})
    port = server.server_address[1]
    server.hosts_seen.clear()

    body = fetch_url(f"http://images.test:{port}/chain/1", LOOPBACK_ONLY)

    assert body == server.image
    assert connections == ["127.0.0.1"]  # one connection, reused for the redirect
    assert lookups == ["images.test"]  # resolved once
    assert server.hosts_seen == [f"images.test:{port}"] * 3  # /chain/1 → /chain/0 → /image.png


# ---------------------------------------------------------------- refused addresses


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.7", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("fd00:ec2::254", "metadata"),
    ],
)
def test_address_check_refuses_non_public_address(address: str, fragment: str) -> None:
    reason = refused_address_reason(address)
    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_address_check_allows_public_address(address: str) -> None:
    assert refused_address_reason(address) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("100.64.0.1", True),
        ("169.254.1.1", True),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
    ],
)
def test_address_check_with_allow_private_keeps_metadata_refused(address: str, allowed: bool) -> None:
    assert (refused_address_reason(address, allow_private=True) is None) is allowed


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:9/image.png", "loopback address 127.0.0.1"),
        ("http://[::1]:9/image.png", "loopback address ::1"),
        ("http://10.0.0.1/image.png", "private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
        ("http://100.64.0.1/image.png", "carrier-grade NAT"),
        ("http://[::ffff:127.0.0.1]/image.png", "loopback address 127.0.0.1"),
        ("https://0.0.0.0/image.png", "unspecified"),
    ],
)
def test_fetch_refuses_literal_address_before_connecting(url: str, fragment: str, connections: list[str]) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch_url(url, FetchPolicy())
    assert fragment in caught.value.detail
    assert connections == []


def test_fetch_refuses_localhost_name_after_resolution_before_connecting(connections: list[str]) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch_url("http://localhost:9/image.png", FetchPolicy())
    assert "localhost resolves to loopback address" in caught.value.detail
    assert connections == []


def test_fetch_refuses_name_resolving_to_metadata_address(
    connections: list[str], fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    fake_dns({"metadata.google.internal": ["169.254.169.254"]})
    with pytest.raises(ImageFetchError) as caught:
        fetch_url("http://metadata.google.internal/computeMetadata/v1/", FetchPolicy(allow_private=True))
    assert "cloud metadata address 169.254.169.254" in caught.value.detail
    assert connections == []


def test_fetch_refuses_name_with_any_private_answer(
    connections: list[str], fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    fake_dns({"mixed.test": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(ImageFetchError, match=re.escape("private address 10.0.0.5")):
        fetch_url("http://mixed.test/image.png", FetchPolicy())
    assert connections == []


def test_fetch_reports_unresolvable_host(
    connections: list[str], fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    fake_dns({})
    with pytest.raises(ImageFetchError, match="could not be resolved"):
        fetch_url("http://nowhere.test/image.png", FetchPolicy())
    assert connections == []


# ---------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
        ("http://10.0.0.1/image.png", "private address 10.0.0.1"),
        ("http://[::ffff:192.168.0.1]/", "private address 192.168.0.1"),
    ],
)
def test_fetch_refuses_redirect_to_refused_address(
    server: ImageServer, connections: list[str], allow_only_loopback_127001: None, target: str, fragment: str
) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch_url(url_of(server, f"/redirect?to={target}"), FetchPolicy())
    assert caught.value.detail.startswith("redirect refused")
    assert fragment in caught.value.detail
    assert connections == ["127.0.0.1"]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/image.png", "gopher://127.0.0.1/"])
def test_fetch_refuses_redirect_to_other_scheme(server: ImageServer, connections: list[str], target: str) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch_url(url_of(server, f"/redirect?to={target}"), LOOPBACK_ONLY)
    assert "redirect refused" in caught.value.detail
    assert "scheme" in caught.value.detail


def test_fetch_refuses_too_many_redirects(server: ImageServer, connections: list[str]) -> None:
    policy = FetchPolicy(allow_private=True, max_redirects=3, timeout_s=5.0)
    with pytest.raises(ImageFetchError, match=r"too many redirects \(more than 3\)"):
        fetch_url(url_of(server, "/chain/3"), policy)  # /chain/N answers N + 1 redirects
    assert fetch_url(url_of(server, "/chain/2"), policy) == server.image


def test_fetch_refuses_redirect_without_location(server: ImageServer, connections: list[str]) -> None:
    with pytest.raises(ImageFetchError, match="without a Location"):
        fetch_url(url_of(server, "/no-location"), LOOPBACK_ONLY)


# ---------------------------------------------------------------- status, size and time limits


def test_fetch_reports_http_status(server: ImageServer, connections: list[str]) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch_url(url_of(server, "/missing"), LOOPBACK_ONLY)
    assert caught.value.detail == "image URL answered HTTP 404"


def test_fetch_refuses_declared_length_over_limit(server: ImageServer, connections: list[str]) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=10_000, timeout_s=5.0)
    with pytest.raises(ImageFetchError) as caught:
        fetch_url(url_of(server, "/big-length"), policy)
    assert "50000 bytes (Content-Length)" in caught.value.detail
    assert "10000-byte limit" in caught.value.detail


def test_fetch_refuses_chunked_body_over_limit_while_streaming(server: ImageServer, connections: list[str]) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=10_000, timeout_s=5.0)
    with pytest.raises(ImageFetchError, match="exceeded the 10000-byte limit while downloading"):
        fetch_url(url_of(server, "/big-chunked"), policy)


def test_fetch_accepts_chunked_body_within_limit(server: ImageServer, connections: list[str]) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=60_000, timeout_s=5.0)
    assert fetch_url(url_of(server, "/big-chunked"), policy) == bytes(50_000)


def test_fetch_refuses_empty_body(server: ImageServer, connections: list[str]) -> None:
    with pytest.raises(ImageFetchError, match="empty body"):
        fetch_url(url_of(server, "/empty"), LOOPBACK_ONLY)


@pytest.mark.parametrize("path", ["/stall", "/trickle", "/slow-headers"])
def test_fetch_gives_up_at_total_time_limit(server: ImageServer, connections: list[str], path: str) -> None:
    policy = FetchPolicy(allow_private=True, timeout_s=0.4)
    started = time.monotonic()
    with pytest.raises(ImageFetchError, match=r"longer than the 0.4 s limit"):
        fetch_url(url_of(server, path), policy)
    assert time.monotonic() - started < 3.0  # the 0.4 s limit plus slack; the server would go on for 10 s or more


def test_fetch_reports_refused_connection(connections: list[str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ImageFetchError, match=re.escape("could not connect to 127.0.0.1: connection refused")):
        fetch_url(f"http://127.0.0.1:{port}/image.png", LOOPBACK_ONLY)


# ---------------------------------------------------------------- URL checks and policy


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://example.com/a.jpg", "scheme 'ftp'"),
        ("http://user:secret@example.com/a.jpg", "credentials"),
        ("http:///a.jpg", "no host"),
    ],
)
def test_fetch_refuses_bad_url_before_connecting(url: str, fragment: str, connections: list[str]) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch_url(url, FetchPolicy())
    assert fragment in caught.value.detail
    assert connections == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"max_redirects": -1},
        {"max_bytes": 1.5},
    ],
)
def test_fetch_policy_refuses_invalid_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FetchPolicy(**kwargs)


def test_fetch_policy_defaults_are_safe() -> None:
    policy = FetchPolicy()
    assert policy.allow_private is False
    assert policy.max_bytes == 40 * 1024 * 1024
    assert policy.timeout_s == 15.0
    assert policy.max_redirects == 5


# ---------------------------------------------------------------- TLS: SNI and verification use the name


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for ``images.test`` (made with the openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
            "-subj",
            "/CN=images.test",
            "-addext",
            "subjectAltName=DNS:images.test",
        ],
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture
def tls_server(tls_material: Path) -> Iterator[ImageServer]:
    """An HTTPS server on 127.0.0.1 presenting the ``images.test`` certificate."""
    instance = ImageServer(("127.0.0.1", 0), Handler)
    instance.image = photo_png()
    instance.release = threading.Event()
    instance.hosts_seen = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_material / "cert.pem", tls_material / "key.pem")
    instance.socket = context.wrap_socket(instance.socket, server_side=True)
    start_server(instance)
    yield instance
    instance.release.set()
    instance.shutdown()
    instance.server_close()


@pytest.fixture
def trust_test_certificate(monkeypatch: pytest.MonkeyPatch, tls_material: Path) -> None:
    """Make the fetcher trust only the test certificate."""
    context = ssl.create_default_context(cafile=str(tls_material / "cert.pem"))
    monkeypatch.setattr(fetch_module, "tls_context", lambda: context)


def test_fetch_https_verifies_certificate_against_host_name_not_ip(
    tls_server: ImageServer,
    trust_test_certificate: None,
    connections: list[str],
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    fake_dns({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    port = tls_server.server_address[1]

    body = fetch_url(f"https://images.test:{port}/image.png", LOOPBACK_ONLY)

    assert body == tls_server.image
    with pytest.raises(ImageFetchError, match="TLS certificate verification failed"):
        fetch_url(f"https://other.test:{port}/image.png", LOOPBACK_ONLY)
    assert set(connections) == {"127.0.0.1"}


def test_fetch_default_tls_context_verifies_certificates() -> None:
    context = fetch_module.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_fetched_photo_decodes_to_original_pixels(server: ImageServer, connections: list[str]) -> None:
    decoded = decode_image(fetch_url(url_of(server, "/image.png"), LOOPBACK_ONLY))
    np.testing.assert_allclose(decoded.rgb * 255.0, skimage.data.coffee(), atol=1e-3)
