"""Source-address allow-lists for the ingest protocols that carry no API key (SIP, AudioSocket)."""

from __future__ import annotations

import ipaddress


class AllowList:
    """Addresses and networks (CIDR) that may connect; an empty list allows every source."""

    def __init__(self, entries: list[str]) -> None:
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def allows(self, host: str) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
