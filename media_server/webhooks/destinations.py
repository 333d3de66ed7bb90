"""Where a webhook may send: ``http``/``https`` URLs whose host resolves only to public addresses, never to the
server's own network (loopback, private, link-local, shared, reserved, multicast addresses, nor any address of
this machine's interfaces), unless the server's settings allow it (``webhooks.allow_private``, or a CIDR or host
name in ``webhooks.allow``). The check runs when a webhook is created and again before each attempt, and the
attempt connects to the address that was checked (not to a second lookup, which DNS rebinding could answer
differently)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx
import psutil

from media_server.config import WebhookSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2048


class RefusedDestination(ValueError):
    """A URL a webhook may not send to; the message says why and what to change."""


@dataclass(frozen=True)
class Destination:
    url: httpx.URL  # as the admin gave it
    address: str  # the checked address the attempt connects to

    @property
    def pinned(self) -> httpx.URL:
        """The URL with its host replaced by the checked address (``Host`` and TLS SNI keep the name)."""
        return self.url.copy_with(host=self.address)


def parse(url: str) -> httpx.URL:
    """A webhook URL as given, checked for its form only."""
    if len(url) > MAX_URL:
        raise RefusedDestination(f"the URL is longer than {MAX_URL} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise RefusedDestination(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise RefusedDestination("the URL must be http:// or https://")
    if not parsed.host:
        raise RefusedDestination("the URL has no host")
    if parsed.userinfo:
        raise RefusedDestination("credentials in the URL are not kept: use the signature to authenticate deliveries")
    return parsed


async def resolve(url: str, settings: WebhookSettings, timeout_s: float = 5.0) -> Destination:
    """The destination of ``url`` if every address its host resolves to is allowed; ``RefusedDestination``
    otherwise (or when it does not resolve)."""
    parsed = parse(url)
    host = parsed.host.lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            async with asyncio.timeout(timeout_s):
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise RefusedDestination(f"{host} does not resolve ({exc.__class__.__name__})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise RefusedDestination(f"{host} does not resolve")
    if host not in settings.allow:
        for address in addresses:
            why = _refused(_unmapped(address), settings)
            if why:
                raise RefusedDestination(
                    f"{host} resolves to {address}, {why}: webhooks may not send there "
                    "(a server setting allows it: webhooks.allow with its CIDR or host name, or webhooks.allow_private)"
                )
    return Destination(parsed, str(addresses[0]))


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _refused(address: IPAddress, settings: WebhookSettings) -> str:
    """Why an address is refused ("" when it is allowed)."""
    for entry in settings.allow:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return ""
        except ValueError:
            continue  # (a host name)
    if settings.allow_private:
        return ""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return "not a public address"
    if address in own_addresses():
        return "an address of this server"
    return ""


def own_addresses() -> set[IPAddress]:
    """The addresses of this machine's network interfaces."""
    out: set[IPAddress] = set()
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    out.add(ipaddress.ip_address(entry.address.split("%")[0]))
                except ValueError:
                    continue
    return out
