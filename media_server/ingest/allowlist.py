"""Source-address allow-lists for the ingest protocols that carry no API key (SIP, AudioSocket).

They fail closed: an empty list allows no one (a server that enables SIP without naming its SBCs records nothing,
and says so at start); ``0.0.0.0/0`` and ``::/0`` allow everyone, and only when written down.
"""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger(__name__)


class AllowList:
    """Addresses and networks (CIDR) that may connect; an empty list allows none. ``setting``: its name, for the
    warning an empty list gets."""

    def __init__(self, entries: list[str], setting: str = "") -> None:
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries]
        if not self.networks and setting:
            log.warning(
                "%s is empty: every source is refused (list the addresses or networks that may connect; "
                "0.0.0.0/0 and ::/0 allow any)",
                setting,
            )

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
