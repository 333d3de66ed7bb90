"""Where a recording session's RTP may come from: the SRC's offered addresses, its signalling address, ``sip.allow``.

Without this, symmetric RTP would latch onto anyone who guessed a port: a host refused at the SIP level could
still speak into a live call with a new SSRC. A session's RTP is taken only from:

- the address each ``c=`` line of the SRC's latest offer names (where an SBC sends from, RFC 4961 symmetric RTP),
- the address its SIP requests come from (an SBC behind NAT writes its private address in ``c=``),
- the networks listed in ``sip.allow`` (SBC clusters send media from relay addresses that neither names).

An empty ``sip.allow`` adds nothing (it admits every SIP source, not every media source). Ports are not
compared: a sender's source port need not be the one its m-line advertises (sipp's is not). A host name in
``c=`` (RFC 4566 allows one) is resolved when the offer comes (``resolve``); one that does not resolve within
``RESOLVE_TIMEOUT_S`` adds nothing, so such an SBC's media addresses belong in ``sip.allow``. Datagrams from
elsewhere are counted and dropped by the receiver before they can latch or change an SSRC; each refused host is
logged once per call (its address, the first port seen and the stream; nothing of what it sent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable

from media_server.ingest.allowlist import AllowList

log = logging.getLogger(__name__)

MAX_LOGGED = 32  # refused hosts logged one by one per call; past that, only counted
RESOLVE_TIMEOUT_S = 2.0
_MAX_VERDICTS = 256  # hosts whose verdict is remembered (every datagram asks; parsing each address costs)


def host_key(host: str) -> str:
    """An IP address in one spelling (IPv4-mapped IPv6 as IPv4, no zone); other names as given."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host.lower()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


async def resolve(hosts: Iterable[str]) -> list[str]:
    """The offer's ``c=`` addresses as IP addresses: host names resolved (those that fail are left out, logged)."""
    loop = asyncio.get_running_loop()
    out = []
    for host in dict.fromkeys(h for h in hosts if h):
        if _is_address(host):
            out.append(host)
            continue
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as exc:
            log.warning(
                "SIPREC: the SDP's c= host %s did not resolve (%s): RTP only from the SIP source or sip.allow",
                host,
                exc,
            )
            continue
        out += [str(info[4][0]) for info in infos]
    return out


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


class MediaSources:
    """The sources one recording session takes RTP from (see the module docstring); shared by its streams."""

    def __init__(self, call_id: str, signalling: str, allow: list[str]) -> None:
        self.call_id = call_id
        self.allow = AllowList(allow) if allow else None
        self.signalling = host_key(signalling)
        self.offered: frozenset[str] = frozenset()
        self.refused = 0  # datagrams refused, all streams together
        self._logged: set[str] = set()  # hosts
        self._verdicts: dict[str, bool] = {}

    def offer(self, hosts: Iterable[str]) -> None:
        """The addresses of the SRC's latest offer (a re-INVITE may move the media to another SBC node)."""
        self.offered = frozenset(host_key(h) for h in hosts if h)
        self._verdicts.clear()

    def allows(self, host: str) -> bool:
        verdict = self._verdicts.get(host)
        if verdict is None:
            key = host_key(host)
            verdict = key in (self.signalling, *self.offered) or (self.allow is not None and self.allow.allows(key))
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict

    def admits(self, label: str, source: tuple[str, int]) -> bool:
        """Whether a datagram from ``source`` may feed stream ``label``; a refusal is counted (logged once)."""
        if self.allows(source[0]):
            return True
        self.refused += 1
        if source[0] not in self._logged and len(self._logged) < MAX_LOGGED:
            self._logged.add(source[0])
            log.warning(
                "SIPREC call %s, stream %s: RTP from %s:%d dropped: neither offered in the SDP nor on sip.allow",
                self.call_id,
                label,
                *source,
            )
        return False
