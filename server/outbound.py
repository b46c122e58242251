"""Outbound HTTP under one address policy: image URLs (fetched) and job callbacks (posted).

Every outbound connection of the service goes through a network backend of this module that
resolves the host name once, refuses the whole host when any resolved address is refused
(:func:`refused_address_reason`), and connects to the vetted IP address itself, so a second DNS
answer (DNS rebinding) is never consulted. TLS still verifies the certificate against, and sends SNI
for, the original host name, and the ``Host`` header carries the original name.

* :func:`fetch_url` under a :class:`FetchPolicy` — blocking image download (redirects re-checked by
  hand, byte and time limits); every failure is an :class:`~models.errors.ImageFetchError`.
* :class:`VettedAsyncBackend`, :func:`resolve_vetted` — the same vetting for asynchronous clients
  (webhook callbacks: their URL check at submission and their delivery); a refused address raises
  :class:`OutboundRefusedError`.
* :func:`distinct_addresses` (the one reading of a DNS answer, sync and async),
  :func:`refused_host_reason` (a host as a whole), :func:`refused_address_reason`, :func:`literal_ip`
  — the address rules themselves; :func:`tls_context` — the TLS settings of every outbound call.

Rules (exercised by ``tests/test_imageio_fetch.py`` and ``tests/test_jobs_callbacks.py``):

* A host is refused when *any* of its addresses is refused (a name that mixes public and private
  answers is treated as hostile). IPv4 addresses embedded in IPv6 (mapped, NAT64, 6to4) are judged
  as IPv4.
* Without ``allow_private``: loopback, RFC 1918 and fc00::/7, link-local, CGNAT 100.64/10, site-local,
  reserved, documentation and every other non-global range are refused. Cloud metadata addresses
  (169.254.169.254, fd00:ec2::254, ...), unspecified and multicast addresses are refused even with
  ``allow_private``. Literal IPs are refused before any connection attempt; host names right after
  resolution, before connecting.
* Image fetches: URLs with credentials (``user:pass@``) are refused. Redirects (301/302/303/307/308)
  are followed by hand, each hop re-checked; the method stays GET. ``timeout_s`` bounds the whole
  fetch (DNS, every hop, the body): each socket operation is clamped to the time left.
  ``Accept-Encoding: identity``. Every failure's detail names the refusal or limit; internal
  exception text is never put in a detail.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

from models.pipeline import ImageFetchError

_MIB = 1024 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = b"phota-enhance-local/imageio"
_MAX_DRAINED_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services: refused even when the operator allows private addresses, since no image is
# ever served there and reaching them from a server is the classic SSRF prize.
_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("169.254.169.123"),  # AWS time sync
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for getting an image from the API's ``image`` string.

    Attributes:
        allow_private: let URLs reach loopback, private (RFC 1918, fc00::/7), link-local, CGNAT and other
            non-public addresses (the operator's ``ENHANCE_ALLOW_PRIVATE_URLS``). Cloud metadata addresses,
            unspecified and multicast addresses stay refused regardless.
        max_bytes: the most bytes an image may have, fetched or sent inline (base64 payloads are held
            to it too).
        timeout_s: the total time one fetch may take, DNS, connecting, every redirect and the body included.
        max_redirects: how many redirects are followed; each hop is checked again.

    Raises:
        ValueError: a value is out of range (non-positive limits, negative redirects, NaN timeout).
    """

    allow_private: bool = False
    max_bytes: int = 40 * _MIB
    timeout_s: float = 15.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        """Refuse values that would disable a limit or make no sense."""
        if not isinstance(self.allow_private, bool):
            raise ValueError(f"allow_private must be a bool, got {self.allow_private!r}")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {self.max_bytes!r}")
        if (
            isinstance(self.timeout_s, bool)
            or not isinstance(self.timeout_s, int | float)
            or not math.isfinite(self.timeout_s)
            or self.timeout_s <= 0
        ):
            raise ValueError(f"timeout_s must be a positive finite number of seconds, got {self.timeout_s!r}")
        if isinstance(self.max_redirects, bool) or not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise ValueError(f"max_redirects must be a non-negative integer, got {self.max_redirects!r}")


def refused_address_reason(address: str | IPAddress, *, allow_private: bool = False) -> str | None:
    """Say why an IP address must not be fetched from, or ``None`` when it may be.

    ``address`` is an IP address (text or ``ipaddress`` object); IPv4 addresses embedded in IPv6 ones
    (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged as the IPv4
    address they carry. With ``allow_private`` only metadata, unspecified and multicast addresses are
    refused.

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = refused_address_reason(embedded, allow_private=allow_private)
        return None if inner is None else f"{inner} (embedded in IPv6 address {ip})"
    if ip in _METADATA_ADDRESSES:
        return f"cloud metadata address {ip}"
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return f"unspecified address {ip}"
    if ip.is_multicast:
        return f"multicast address {ip}"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"loopback address {ip}"
    if ip.is_link_local:
        return f"link-local address {ip}"
    if ip in _CGNAT:
        return f"shared (carrier-grade NAT) address {ip}"
    if ip.is_private and (isinstance(ip, ipaddress.IPv6Address) or _is_rfc1918(ip)):
        return f"private address {ip}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return f"site-local address {ip}"
    if ip.is_reserved or not ip.is_global:
        return f"reserved (non-public) address {ip}"
    return None


def _is_rfc1918(ip: ipaddress.IPv4Address) -> bool:
    """Whether an IPv4 address is in 10/8, 172.16/12 or 192.168/16."""
    return any(ip in ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), else ``None``."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def check_fetch_url(url: str | httpx.URL, policy: FetchPolicy) -> httpx.URL:
    """Check one hop's URL before any connection: scheme, host, credentials, and a literal IP host.

    Host names are checked later, when they are resolved (see the module docstring). Returns the parsed
    URL.

    Raises:
        ImageFetchError: the URL is malformed, not http/https, carries credentials, has no host, or its
            host is an IP address that ``policy`` refuses.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ImageFetchError("image URL is malformed") from exc
    if parsed.scheme not in ("http", "https"):
        shown = parsed.scheme or "(none)"
        raise ImageFetchError(f"URL scheme '{shown}' is not allowed: only http and https URLs are fetched")
    if not parsed.host:
        raise ImageFetchError("image URL has no host")
    if parsed.userinfo:
        raise ImageFetchError("image URLs with embedded credentials (user:password@) are not allowed")
    literal = literal_ip(parsed.host)
    if literal is not None:
        reason = refused_address_reason(literal, allow_private=policy.allow_private)
        if reason is not None:
            raise ImageFetchError(f"image URL refused: {reason}")
    return parsed


def literal_ip(host: str) -> IPAddress | None:
    """The IP address a URL host spells literally (brackets and zone ignored), or ``None`` for a host name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """Download an image over http(s) under ``policy`` and return the body bytes (blocking).

    Each hop is checked (scheme, address) before it is contacted; redirects (301, 302, 303, 307, 308)
    are followed by hand up to ``policy.max_redirects``; ``Content-Length`` is checked against
    ``policy.max_bytes`` up front and the byte count while streaming; ``policy.timeout_s`` bounds the
    whole fetch. The body is returned as sent (``Accept-Encoding: identity``); its format is sniffed by
    the decoder, never taken from ``Content-Type``.

    Raises:
        ImageFetchError: for every failure, with a detail that says which check or limit refused it
            (refused address class, scheme, too many redirects, HTTP status, size, time, network error).
    """
    deadline = time.monotonic() + policy.timeout_s
    target = check_fetch_url(url, policy)
    backend = _VettedNetworkBackend(policy, deadline)
    try:
        with httpcore.ConnectionPool(
            ssl_context=tls_context(), network_backend=backend, retries=0, http1=True, http2=False
        ) as pool:
            for hop in range(policy.max_redirects + 1):
                body = bytearray()
                location = _get(pool, target, policy, deadline, body)
                if location is None:
                    return bytes(body)
                if hop == policy.max_redirects:
                    break
                try:
                    next_url = target.join(location)
                except (httpx.InvalidURL, TypeError, ValueError) as exc:
                    raise ImageFetchError("redirect Location header is not a valid URL") from exc
                try:
                    target = check_fetch_url(next_url, policy)
                except ImageFetchError as exc:
                    raise ImageFetchError(f"redirect refused: {exc.detail}") from exc
            raise ImageFetchError(f"too many redirects (more than {policy.max_redirects})")
    except ImageFetchError:
        raise
    except httpcore.TimeoutException as exc:
        raise ImageFetchError(f"fetching the image took longer than the {policy.timeout_s:g} s limit") from exc
    except httpcore.ConnectError as exc:
        raise ImageFetchError(f"could not connect to {target.host}: {_connect_failure(exc)}") from exc
    except httpcore.ProtocolError as exc:
        raise ImageFetchError(f"{target.host} sent an invalid HTTP response") from exc
    except httpcore.NetworkError as exc:
        raise ImageFetchError(f"the connection to {target.host} failed while fetching the image") from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageFetchError("fetching the image failed") from exc


def _get(
    pool: httpcore.ConnectionPool, url: httpx.URL, policy: FetchPolicy, deadline: float, out: bytearray
) -> str | None:
    """GET one hop; fill ``out`` with a 2xx body, or return the Location of a redirect.

    Raises:
        ImageFetchError: non-2xx status, redirect without Location, too large, empty body, deadline.
    """
    remaining = _remaining(deadline, policy)
    request_url = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path or b"/")
    headers = [
        (b"Host", url.netloc),
        (b"User-Agent", _USER_AGENT),
        (b"Accept", b"image/*, */*;q=0.5"),
        (b"Accept-Encoding", b"identity"),
    ]
    timeouts = {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining}
    with pool.stream("GET", request_url, headers=headers, extensions={"timeout": timeouts}) as response:
        status = response.status
        if status in _REDIRECT_STATUSES:
            location = _header(response.headers, b"location")
            if not location:
                raise ImageFetchError(f"image URL answered a redirect (HTTP {status}) without a Location")
            _drain(response, deadline)
            return location
        if not 200 <= status < 300:
            raise ImageFetchError(f"image URL answered HTTP {status}")
        declared = _content_length(response.headers)
        if declared is not None and declared > policy.max_bytes:
            raise ImageFetchError(
                f"image is {declared} bytes (Content-Length), more than the {policy.max_bytes}-byte limit"
            )
        for chunk in response.iter_stream():
            out += chunk
            if len(out) > policy.max_bytes:
                raise ImageFetchError(f"image exceeded the {policy.max_bytes}-byte limit while downloading")
            if time.monotonic() > deadline:
                raise ImageFetchError(f"fetching the image took longer than the {policy.timeout_s:g} s limit")
    if not out:
        raise ImageFetchError("image URL answered with an empty body")
    return None


def _drain(response: httpcore.Response, deadline: float) -> None:
    """Read a redirect's (small) body so that its connection can serve the next hop; big ones are cut."""
    drained = 0
    try:
        for chunk in response.iter_stream():
            drained += len(chunk)
            if drained > _MAX_DRAINED_BYTES or time.monotonic() > deadline:
                return
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException):
        return  # the connection is discarded; the next hop opens a new one


def _remaining(deadline: float, policy: FetchPolicy) -> float:
    """Seconds left before ``deadline``; raises when none are."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ImageFetchError(f"fetching the image took longer than the {policy.timeout_s:g} s limit")
    return remaining


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case) as text, or ``None``."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared body length, or ``None`` when absent or not a plain non-negative integer."""
    value = _header(headers, b"content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


def _connect_failure(exc: BaseException) -> str:
    """A short, safe description of why a connection failed (no internal exception text)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "TLS certificate verification failed"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host name could not be resolved"
        cause = cause.__cause__ or cause.__context__
    return "network error"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every outbound call (image fetches, callbacks): certificate verification on,
    certifi's CA bundle, no proxy or CA settings from the environment (built once)."""
    return httpx.create_ssl_context(trust_env=False)


class _VettedNetworkBackend(httpcore.NetworkBackend):
    """An httpcore backend that resolves once, refuses non-allowed addresses and connects to the vetted IP."""

    def __init__(self, policy: FetchPolicy, deadline: float) -> None:
        """Wrap the default sync backend; ``deadline`` (``time.monotonic()``) bounds every socket call."""
        self._inner = httpcore.SyncBackend()
        self._policy = policy
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve ``host``, vet every address, connect to the first vetted one that answers.

        Raises:
            ImageFetchError: the host does not resolve, or resolves to a refused address.
            httpcore.ConnectError, httpcore.ConnectTimeout: no vetted address accepted the connection.
        """
        addresses = _resolve(host, port, self._timeout(timeout), self._policy)
        reason = refused_host_reason(addresses, allow_private=self._policy.allow_private)
        if reason is not None:
            raise ImageFetchError(f"image URL refused: host {host} resolves to {reason}")
        last_error: Exception | None = None
        for ip in addresses:
            try:
                stream = self._inner.connect_tcp(str(ip), port, self._timeout(timeout), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert last_error is not None  # _resolve never returns an empty list
        raise last_error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Unix sockets are never used for image URLs."""
        raise ImageFetchError("unix sockets are not allowed for image URLs")

    def sleep(self, seconds: float) -> None:
        """Delegate to the default backend."""
        self._inner.sleep(seconds)

    def _timeout(self, timeout: float | None) -> float:
        """``timeout`` clamped to the time left before the deadline."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ConnectTimeout("deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


def _resolve(host: str, port: int, timeout: float, policy: FetchPolicy) -> list[IPAddress]:
    """Resolve ``host`` once (in a helper thread, so ``timeout`` holds) to its distinct IP addresses.

    Raises:
        ImageFetchError: resolution failed, returned nothing usable, or took too long.
    """
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    result: list[Any] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # reported to the waiting thread below
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="imageio-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ImageFetchError(f"resolving {host} took longer than the {policy.timeout_s:g} s limit")
    if failure or not result:
        raise ImageFetchError(f"host name {host} could not be resolved")
    addresses = distinct_addresses(result)
    if not addresses:
        raise ImageFetchError(f"host name {host} has no IPv4 or IPv6 address")
    return addresses


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read, write and TLS handshake ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        """Wrap ``inner``; ``deadline`` is a ``time.monotonic()`` value."""
        self._inner = inner
        self._deadline = deadline

    def _clamp(self, timeout: float | None, error: type[httpcore.TimeoutException]) -> float:
        """``timeout`` clamped to the time left; raises ``error`` when none is."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error("deadline passed")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read at most ``max_bytes`` before the deadline."""
        return self._inner.read(max_bytes, self._clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write ``buffer`` before the deadline."""
        self._inner.write(buffer, self._clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the underlying stream."""
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        """Upgrade to TLS (SNI and verification use ``server_hostname``, the URL's host name)."""
        tls = self._inner.start_tls(ssl_context, server_hostname, self._clamp(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        """Delegate to the underlying stream."""
        return self._inner.get_extra_info(info)


class OutboundRefusedError(Exception):
    """Raised by :func:`resolve_vetted` (and so :class:`VettedAsyncBackend`) when a host resolves to a
    refused address (or a unix socket is asked for); the message names the rule, ``reason`` is the
    refused address class (:func:`refused_address_reason`), empty for a unix socket."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def distinct_addresses(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The distinct IPv4/IPv6 addresses of ``socket.getaddrinfo`` results, in their order (scope ids
    dropped, other families skipped): the one reading of a DNS answer, for every outbound call."""
    addresses: list[IPAddress] = []
    for info in infos:
        ip = literal_ip(str(info[4][0]))
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    return addresses


def refused_host_reason(addresses: Iterable[IPAddress], *, allow_private: bool) -> str | None:
    """Why a host with these addresses is refused (the first refused address's class), or ``None``:
    a host is refused as a whole when any of its addresses is."""
    for ip in addresses:
        reason = refused_address_reason(ip, allow_private=allow_private)
        if reason is not None:
            return reason
    return None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """``host``'s distinct IP addresses (a literal IP is returned as is), resolved once without
    blocking the event loop. Raises ``OSError`` when resolution fails."""
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    return distinct_addresses(await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM))


async def resolve_vetted(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """``host``'s addresses, resolved once (:func:`resolve_host`) and vetted as a whole
    (:func:`refused_host_reason`): what an asynchronous outbound call may connect to.

    Raises:
        OSError: the host does not resolve.
        OutboundRefusedError: the host resolves to a refused address (``reason``: its class).
    """
    addresses = await resolve_host(host, port)
    reason = refused_host_reason(addresses, allow_private=allow_private)
    if reason is not None:
        raise OutboundRefusedError(f"host {host} resolves to a {reason}", reason)
    return addresses


class VettedAsyncBackend(httpcore.AsyncNetworkBackend):
    """An async httpcore backend that resolves once, refuses the host when any address is refused
    (``allow_private`` as in :func:`refused_address_reason`) and connects to the vetted address."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host``, vet every address, connect to the first vetted one that answers.

        Raises:
            OutboundRefusedError: the host resolves to a refused address.
            httpcore.ConnectError: the host does not resolve, or no vetted address accepted the connection.
        """
        try:
            addresses = await resolve_vetted(host, port, allow_private=self._allow_private)
        except OSError as exc:
            raise httpcore.ConnectError(f"host {host} could not be resolved") from exc
        last_error: Exception = httpcore.ConnectError(f"host {host} has no address")
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are never used for outbound requests."""
        raise OutboundRefusedError("unix sockets are not allowed for outbound requests")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the default backend."""
        await self._inner.sleep(seconds)
