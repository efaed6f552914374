"""Customer URLs Magpie will call (receipt callbacks, SMS uplink): http(s), at most 1000 characters, and public.

"Public" means every address the host resolves to is globally routable: private, loopback, link-local,
multicast, reserved and unspecified addresses are refused, so a tenant cannot make Magpie call into its own
network (SSRF). ``MAGPIE_ALLOW_LOOPBACK_CALLBACKS=1`` additionally accepts loopback addresses (local demo and
tests). The dispatcher must re-check the address when it connects (DNS can change after registration).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_CHARS = 1000


class UrlRejected(ValueError):
    """The URL is not acceptable; the message says why (safe to return to the client)."""


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _acceptable(address: IpAddress, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


async def _resolve(host: str) -> list[IpAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlRejected(f"the host {host!r} cannot be resolved") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_syntax(url: str) -> tuple[str, str]:
    """Scheme and host of an http(s) URL of at most 1000 characters (no network access)."""
    if not url or len(url) > MAX_URL_CHARS:
        raise UrlRejected(f"the URL must have 1 to {MAX_URL_CHARS} characters")
    if any(ch.isspace() for ch in url):
        raise UrlRejected("the URL must not contain white space")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("the URL is malformed") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRejected("the URL must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise UrlRejected("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRejected("the URL must not carry credentials")
    if port == 0:
        raise UrlRejected("the URL has an invalid port")
    return scheme, host


async def check_public_url(url: str, *, allow_loopback: bool = False) -> None:
    """Raise ``UrlRejected`` unless ``url`` is an http(s) URL whose host only resolves to public addresses."""
    _, host = check_syntax(url)
    try:
        addresses: list[IpAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
            addresses = [ipaddress.ip_address("127.0.0.1")]
        else:
            addresses = await _resolve(host)
    if not addresses:
        raise UrlRejected(f"the host {host!r} cannot be resolved")
    for address in addresses:
        if not _acceptable(address, allow_loopback):
            raise UrlRejected(f"the host {host!r} is not a public address")
