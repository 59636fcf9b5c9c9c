"""fetch_remote_image against a real HTTP server on 127.0.0.1 (and ::1): nothing here leaves the machine.

The server is on loopback, which the fetch refuses by default, so tests that need a successful
fetch allow 127.0.0.0/8 explicitly, as an on-premise deployment would allow its bucket's network.
"""

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import certifi
import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from labeling.remote_images import fetch_remote_image
from tests.factories import png_upload

PNG = png_upload(size=(64, 48)).read()


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily = socket.AF_INET) -> None:
        self.address_family = family
        super().__init__(address, ImageHandler)
        self.requests: list[tuple[str, str]] = []  # (path, Host header) of each request
        # Set at teardown so that the never-answering /slow handler ends with the server.
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]


class ImageHandler(BaseHTTPRequestHandler):
    server: ImageServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers["Host"]))
        if self.path.startswith("/redirects/"):
            self._redirects_then_png(int(self.path.rsplit("/", 1)[1]))
        elif self.path == "/image.png":
            self._send(200, "image/png", PNG)
        elif self.path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif self.path == "/to-loopback":
            self._redirect(f"http://127.0.0.1:{self.server.port}/image.png")
        elif self.path == "/to-ftp":
            self._redirect("ftp://files.example.com/image.png")
        elif self.path == "/page.html":
            self._send(200, "text/html", b"<!doctype html><title>Not an image</title><p>Hello</p>")
        elif self.path == "/unannounced-big.png":
            self._send_without_length(PNG + bytes(100_000))
        elif self.path == "/slow":
            self.server.stopping.wait(timeout=10)
        else:
            self.send_error(404)

    def _redirects_then_png(self, remaining: int) -> None:
        if remaining == 0:
            self._send(200, "image/png", PNG)
        else:
            # A path-relative Location: the client has to resolve it against the current URL.
            self._redirect(str(remaining - 1))

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_without_length(self, body: bytes) -> None:
        # HTTP/1.0 without Content-Length: the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        # The client is expected to hang up once it has read past its byte cap.
        with contextlib.suppress(ConnectionError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest would show every request on a failure."""


def serve(server: ImageServer) -> Iterator[ImageServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def running_server() -> Iterator[ImageServer]:
    yield from serve(ImageServer(("127.0.0.1", 0)))


@pytest.fixture
def server(running_server: ImageServer) -> ImageServer:
    running_server.requests.clear()
    return running_server


@pytest.fixture
def connections(monkeypatch) -> list[object]:
    """Every address a socket connects to during the test (the connection itself still happens)."""
    attempted: list[object] = []
    real_connect = socket.socket.connect

    def recording_connect(sock: socket.socket, address: object) -> None:
        attempted.append(address)
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    return attempted


@pytest.fixture
def allow_loopback(settings) -> None:
    settings.REMOTE_IMAGE_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def fake_dns(monkeypatch) -> dict[str, list[str]]:
    """Made-up host names and the addresses they resolve to; other names resolve as usual."""
    names: dict[str, list[str]] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in names:
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)) for address in names[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def refusal(url: str) -> str:
    with pytest.raises(ValidationError) as caught:
        fetch_remote_image(url)
    return caught.value.message


def test_it_reads_the_size_and_format_of_a_png_on_an_allowed_network(server, allow_loopback):
    info = fetch_remote_image(f"http://127.0.0.1:{server.port}/image.png")

    assert (info.width, info.height, info.format) == (64, 48, "PNG")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/image.png",
        "http://localhost:{port}/image.png",
        "http://[::1]:{port}/image.png",
        "http://0.0.0.0:{port}/image.png",
        "http://127.1:{port}/image.png",
        "http://2130706433:{port}/image.png",
        "http://[::ffff:127.0.0.1]:{port}/image.png",
        "http://10.1.2.3/image.png",
        "http://172.16.0.1/image.png",
        "http://192.168.1.1/image.png",
        "http://100.64.0.1/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/image.png",
        "http://[fc00::1]/image.png",
        "http://224.0.0.1/image.png",
        "http://[2002:7f00:1::]/image.png",
    ],
)
def test_it_refuses_internal_addresses_without_connecting(server, connections, url):
    message = refusal(url.format(port=server.port))

    assert "internal address" in message
    assert connections == []
    assert server.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "gopher://example.com/a.png"])
def test_it_refuses_schemes_other_than_http_and_https(connections, url):
    assert "Only http and https" in refusal(url)
    assert connections == []


@pytest.mark.parametrize("redirects", [2, 3])
def test_it_follows_up_to_three_relative_redirects_within_the_allowed_network(server, allow_loopback, redirects):
    info = fetch_remote_image(f"http://127.0.0.1:{server.port}/redirects/{redirects}")

    assert (info.width, info.height) == (64, 48)
    assert len(server.requests) == redirects + 1


def test_it_refuses_a_fourth_redirect(server, allow_loopback):
    assert "Gave up after 3 redirects" in refusal(f"http://127.0.0.1:{server.port}/redirects/4")
    assert len(server.requests) == 4


def test_a_redirect_to_the_metadata_address_is_refused_despite_the_allow_list(server, allow_loopback, connections):
    message = refusal(f"http://127.0.0.1:{server.port}/to-metadata")

    assert message.startswith("The redirect to http://169.254.169.254/latest/meta-data/ was refused")
    assert connections == [("127.0.0.1", server.port)]


def test_a_redirect_to_loopback_from_an_allowed_host_name_is_refused(server, settings, fake_dns):
    fake_dns["bucket.internal.test"] = ["127.0.0.1"]
    settings.REMOTE_IMAGE_ALLOWED_HOSTS = ["bucket.internal.test"]

    message = refusal(f"http://bucket.internal.test:{server.port}/to-loopback")

    assert message.startswith(f"The redirect to http://127.0.0.1:{server.port}/image.png was refused")
    assert [path for path, _ in server.requests] == ["/to-loopback"]


def test_a_redirect_to_another_scheme_is_refused(server, allow_loopback):
    message = refusal(f"http://127.0.0.1:{server.port}/to-ftp")

    assert message.startswith("The redirect to ftp://files.example.com/image.png was refused: Only http and https")


def test_an_html_page_is_refused_as_not_an_image(server, allow_loopback):
    assert "not a readable JPEG, PNG or WebP image" in refusal(f"http://127.0.0.1:{server.port}/page.html")


def test_a_body_announced_over_the_byte_cap_is_refused_before_it_is_read(server, allow_loopback, settings):
    settings.MAX_IMAGE_UPLOAD_BYTES = len(PNG) - 1

    message = refusal(f"http://127.0.0.1:{server.port}/image.png")

    assert f"is {len(PNG)} bytes; the limit is {len(PNG) - 1}" in message


def test_a_body_over_the_byte_cap_without_a_content_length_is_refused(server, allow_loopback, settings):
    settings.MAX_IMAGE_UPLOAD_BYTES = 1000

    assert "larger than the limit of 1000 bytes" in refusal(f"http://127.0.0.1:{server.port}/unannounced-big.png")


def test_a_404_is_reported_with_its_status(server, allow_loopback):
    assert "answered 404 Not Found" in refusal(f"http://127.0.0.1:{server.port}/missing.png")


def test_a_server_that_does_not_answer_hits_the_timeout(server, allow_loopback, settings):
    settings.REMOTE_IMAGE_TIMEOUT_SECONDS = 0.3
    started = time.monotonic()

    message = refusal(f"http://127.0.0.1:{server.port}/slow")

    assert "did not answer within 0.3 seconds" in message
    assert time.monotonic() - started < 3


def test_a_closed_port_is_reported_in_one_line(allow_loopback):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    message = refusal(f"http://127.0.0.1:{port}/image.png")

    assert message.startswith(f"http://127.0.0.1:{port}/image.png could not be fetched:")
    assert "Connection refused" in message and "\n" not in message


def test_a_host_name_resolving_to_a_private_address_is_refused(fake_dns, connections):
    fake_dns["bucket.internal.test"] = ["10.0.0.5"]

    message = refusal("http://bucket.internal.test/image.png")

    assert message == "bucket.internal.test (which resolves to 10.0.0.5) is an internal address and may not be fetched."
    assert connections == []


def test_a_host_name_is_refused_if_any_of_its_addresses_is_internal(fake_dns, connections):
    fake_dns["mixed.example.test"] = ["93.184.216.34", "169.254.169.254"]

    message = refusal("http://mixed.example.test/image.png")

    assert "(which resolves to 169.254.169.254) is an internal address" in message
    assert connections == []


def test_an_allowed_host_name_is_fetched_from_the_address_it_was_checked_at(server, settings, fake_dns, connections):
    fake_dns["bucket.internal.test"] = ["127.0.0.1"]
    settings.REMOTE_IMAGE_ALLOWED_HOSTS = ["bucket.internal.test"]

    info = fetch_remote_image(f"http://bucket.internal.test:{server.port}/image.png")

    assert info.format == "PNG"
    assert connections == [("127.0.0.1", server.port)]
    assert server.requests == [("/image.png", f"bucket.internal.test:{server.port}")]


def test_a_host_name_too_long_for_dns_is_refused(connections):
    long_label = "a" * 64  # DNS labels stop at 63 characters

    assert "is not a valid host name" in refusal(f"http://{long_label}.test/image.png")
    assert connections == []


def test_a_bad_allowed_network_fails_loudly(settings):
    settings.REMOTE_IMAGE_ALLOWED_NETWORKS = ["127.0.0.0/33"]

    with pytest.raises(ImproperlyConfigured, match="REMOTE_IMAGE_ALLOWED_NETWORKS"):
        fetch_remote_image("http://127.0.0.1/image.png")


@pytest.fixture
def ipv6_server() -> Iterator[ImageServer]:
    try:
        server = ImageServer(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    yield from serve(server)


def test_an_ipv6_literal_on_an_allowed_network_is_fetched(ipv6_server, settings):
    settings.REMOTE_IMAGE_ALLOWED_NETWORKS = ["::1/128"]

    info = fetch_remote_image(f"http://[::1]:{ipv6_server.port}/image.png")

    assert info.format == "PNG"
    assert ipv6_server.requests == [("/image.png", f"[::1]:{ipv6_server.port}")]


# --- https: the connection goes to the IP, the certificate is checked against the host name ---


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for images.test, as (certificate file, key file)."""
    if shutil.which("openssl") is None:
        pytest.skip("the https tests make their certificate with the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_server(certificate) -> Iterator[ImageServer]:
    server = ImageServer(("127.0.0.1", 0))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from serve(server)


@pytest.fixture
def trusted_certificate(certificate, monkeypatch) -> None:
    monkeypatch.setattr(certifi, "where", lambda: certificate[0])


def test_https_checks_the_certificate_against_the_host_name_while_connecting_to_the_ip(
    tls_server, trusted_certificate, allow_loopback, fake_dns, connections
):
    fake_dns["images.test"] = ["127.0.0.1"]

    info = fetch_remote_image(f"https://images.test:{tls_server.port}/image.png")

    assert info.format == "PNG"
    assert connections == [("127.0.0.1", tls_server.port)]


def test_https_refuses_a_certificate_for_another_host_name(tls_server, trusted_certificate, allow_loopback, fake_dns):
    fake_dns["other.test"] = ["127.0.0.1"]

    message = refusal(f"https://other.test:{tls_server.port}/image.png")

    assert "could not be fetched" in message and "other.test" in message


def test_https_refuses_a_certificate_from_an_untrusted_issuer(tls_server, allow_loopback, fake_dns):
    fake_dns["images.test"] = ["127.0.0.1"]

    assert "certificate verify failed" in refusal(f"https://images.test:{tls_server.port}/image.png")
