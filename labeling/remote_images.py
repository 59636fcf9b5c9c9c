"""Fetching a remote image on the server without letting its URL reach our own network (SSRF).

An `image_url` is chosen by a user, so a server-side fetch of it could otherwise read loopback
services, private hosts or the cloud metadata endpoint (169.254.169.254). Here the host name is
resolved once, every address it resolves to is checked, and the connection goes to the address
that was checked: urllib3 is handed the IP, with the name kept for the Host header, SNI and the
certificate check, so a second DNS answer (rebinding) never gets a say. Redirects are followed
by hand so that each hop goes through the same checks. Addresses an on-premise bucket needs are
let through by `REMOTE_IMAGE_ALLOWED_NETWORKS` or `REMOTE_IMAGE_ALLOWED_HOSTS`.

Only fetches and inspects: writing the size onto an item is the caller's job.
"""

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.base import ContentFile

from labeling.images import ImageInfo, read_image

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Target:
    """Where one request goes: the checked address, and the name the server knows itself by."""

    scheme: str
    host: str
    port: int
    address: IPAddress
    path: str

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


def fetch_remote_image(url: str) -> ImageInfo:
    """Download the image at an http(s) URL and return its size and format, or raise ValidationError."""
    for hop in range(MAX_REDIRECTS + 1):
        target = _checked_target(url, redirected=hop > 0)
        with _network_errors_as_validation_errors(url), _pool_for(target) as pool:
            response = pool.urlopen("GET", target.path, redirect=False, preload_content=False)
            try:
                if response.status in REDIRECT_STATUSES:
                    url = _redirect_location(url, response)
                    continue
                body = _read_body(url, response)
            finally:
                response.close()
        return read_image(ContentFile(body))
    raise ValidationError(
        f"Gave up after {MAX_REDIRECTS} redirects; the last one pointed to {url}.", code="too_many_redirects"
    )


def _checked_target(url: str, *, redirected: bool) -> Target:
    try:
        return _target(url)
    except ValidationError as error:
        if not redirected:
            raise
        raise ValidationError(f"The redirect to {url} was refused: {error.message}", code=error.code) from None


def _target(url: str) -> Target:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError as error:
        raise ValidationError(f"{url} is not a valid URL ({error}).", code="invalid_url") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValidationError(f"Only http and https URLs can be fetched, not {url}.", code="invalid_scheme")
    if not parts.hostname:
        raise ValidationError(f"{url} has no host.", code="invalid_url")
    host = _ascii_host(parts.hostname)
    address = _allowed_address(host, port)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, address=address, path=path)


def _ascii_host(hostname: str) -> str:
    try:
        return hostname.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(f"{hostname} is not a valid host name.", code="invalid_url") from None


def _allowed_address(host: str, port: int) -> IPAddress:
    """The address to connect to, after checking every address the host resolves to: an attacker
    who controls DNS could otherwise list a public address next to a private one."""
    addresses = _resolve(host, port)
    if host.lower() not in {name.lower().rstrip(".") for name in settings.REMOTE_IMAGE_ALLOWED_HOSTS}:
        for address in addresses:
            if _is_internal(address) and not _in_allowed_networks(address):
                named = host if host == str(address) else f"{host} (which resolves to {address})"
                raise ValidationError(
                    f"{named} is an internal address and may not be fetched.", code="internal_address"
                )
    return addresses[0]


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        results = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ValidationError(f"The host {host} could not be resolved ({error}).", code="unresolvable_host") from None
    # An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address on the wire; unwrapping it
    # lets the checks and the allow-list treat both spellings alike.
    return [_unmapped(ipaddress.ip_address(sockaddr[0])) for *_, sockaddr in results]


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_internal(address: IPAddress) -> bool:
    # is_global alone lets multicast through; is_reserved covers IPv4-compatible (::/96) and
    # NAT64 (64:ff9b::/96) forms, and a 6to4 address is judged by the IPv4 address it carries.
    embedded = address.sixtofour if isinstance(address, ipaddress.IPv6Address) else None
    return any(
        not candidate.is_global or candidate.is_multicast or candidate.is_reserved
        for candidate in (address, embedded)
        if candidate is not None
    )


def _in_allowed_networks(address: IPAddress) -> bool:
    try:
        networks = [ipaddress.ip_network(cidr, strict=False) for cidr in settings.REMOTE_IMAGE_ALLOWED_NETWORKS]
    except ValueError as error:
        raise ImproperlyConfigured(f"REMOTE_IMAGE_ALLOWED_NETWORKS has a bad network: {error}") from None
    return any(address in network for network in networks)


def _pool_for(target: Target) -> urllib3.HTTPConnectionPool:
    timeout = settings.REMOTE_IMAGE_TIMEOUT_SECONDS
    common = {
        "timeout": urllib3.Timeout(connect=timeout, read=timeout),
        "retries": False,
        "headers": {"Host": target.host_header},
    }
    if target.scheme == "http":
        return urllib3.HTTPConnectionPool(str(target.address), target.port, **common)
    return urllib3.HTTPSConnectionPool(
        str(target.address),
        target.port,
        server_hostname=target.host,
        assert_hostname=target.host,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
        **common,
    )


@contextmanager
def _network_errors_as_validation_errors(url: str) -> Iterator[None]:
    try:
        yield
    except urllib3.exceptions.HTTPError as error:
        raise ValidationError(f"{url} {_network_failure(error)}", code="remote_unreachable") from None


def _network_failure(error: urllib3.exceptions.HTTPError) -> str:
    # NewConnectionError subclasses ConnectTimeoutError for backward compatibility; it is no timeout.
    if isinstance(error, urllib3.exceptions.TimeoutError) and not isinstance(
        error, urllib3.exceptions.NewConnectionError
    ):
        return f"did not answer within {settings.REMOTE_IMAGE_TIMEOUT_SECONDS} seconds."
    # urllib3 prefixes the reason with the pool's repr, which names the IP and not the URL.
    return f"could not be fetched: {str(error).rsplit('): ', 1)[-1]}"


def _redirect_location(url: str, response: urllib3.BaseHTTPResponse) -> str:
    location = response.headers.get("Location")
    if not location:
        raise ValidationError(f"{url} answered {response.status} without a Location.", code="remote_status")
    return urljoin(url, location)


def _read_body(url: str, response: urllib3.BaseHTTPResponse) -> bytes:
    if not 200 <= response.status < 300:
        raise ValidationError(f"{url} answered {response.status} {response.reason}.", code="remote_status")
    limit = settings.MAX_IMAGE_UPLOAD_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ValidationError(f"{url} is {declared} bytes; the limit is {limit}.", code="too_large")
    body = bytearray()
    for chunk in response.stream(CHUNK_BYTES):
        body += chunk
        # The stream is decoded, so a gzip body is capped at its unpacked size, and the
        # server's Content-Length (or its absence) cannot make us read more.
        if len(body) > limit:
            raise ValidationError(f"{url} is larger than the limit of {limit} bytes.", code="too_large")
    return bytes(body)
