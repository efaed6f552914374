"""Callback URL safety (SSRF protection), enforced when the sender connects.

Only ``http``/``https`` URLs are POSTed. Every address the host resolves to must be globally routable: private,
loopback, link-local, multicast, reserved and unspecified addresses are refused (``MAGPIE_ALLOW_LOOPBACK_CALLBACKS=1``
additionally accepts loopback, for the dev stack and tests). The check runs inside the HTTP client's network
backend each time it opens a connection, and the connection goes to the address that was checked, so a DNS answer
that changes between the check and the connect (DNS rebinding) cannot redirect a POST into the private network.
Redirects are not followed and environment proxies are ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from urllib.parse import urlsplit

import httpcore
import httpx
from httpcore import AnyIOBackend, AsyncNetworkBackend, AsyncNetworkStream

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCALHOST_NAMES = ("localhost", "localhost.localdomain")


class DestinationRefused(Exception):
    """The callback URL may not be called (scheme, or a non-public address). Permanent for the receipt."""


def acceptable(address: IpAddress, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


def check_scheme(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise DestinationRefused(f"malformed callback URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("callback URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("callback URL must not carry credentials")


class AddressGuard:
    """Resolves a host and refuses it unless every address is acceptable."""

    def __init__(self, *, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback

    async def addresses(self, host: str, port: int) -> list[str]:
        host = host.strip("[]")
        try:
            literal: IpAddress | None = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            literal = None
        if literal is not None:
            found = [literal]
        elif host.lower() in LOCALHOST_NAMES or host.lower().endswith(".localhost"):
            found = [ipaddress.ip_address("127.0.0.1")]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
            found = []
            for info in infos:
                address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
                if address not in found:
                    found.append(address)
        if not found:
            raise httpcore.ConnectError(f"cannot resolve {host!r}")
        refused = [str(a) for a in found if not acceptable(a, self.allow_loopback)]
        if refused:
            raise DestinationRefused(f"destination refused: {host!r} resolves to non-public address {refused[0]}")
        return [str(a) for a in found]


class GuardedBackend(AsyncNetworkBackend):
    """httpcore network backend that checks the destination and connects to the checked address."""

    def __init__(self, guard: AddressGuard, inner: AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.guard.addresses(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise DestinationRefused("unix sockets are not callback destinations")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the connection pool built on ``GuardedBackend`` (TLS still verifies the host name:
    httpcore passes the URL's host as SNI / server_hostname, only the TCP connect goes to the checked address).

    httpx 0.28's AsyncHTTPTransport keeps its pool in ``_pool``; it is replaced by an equivalent pool with the
    guarded backend (the SSRF integration test fails if this stops taking effect)."""

    def __init__(self, guard: AddressGuard, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(guard),
        )


KEEPALIVE_EXPIRY_S = 15.0


def guarded_client(*, allow_loopback: bool, timeout_s: float, max_connections: int) -> httpx.AsyncClient:
    """The sender's one client: a pool of HTTP/1.1 keep-alive connections (httpcore keeps them per origin, so each
    callback destination reuses its own), ``max_connections`` in all (the sender never runs more POSTs at once),
    idle connections kept ``KEEPALIVE_EXPIRY_S`` (a batch URL's POSTs a linger apart reuse theirs)."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    transport = GuardedTransport(AddressGuard(allow_loopback=allow_loopback), limits=limits)
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
    )
