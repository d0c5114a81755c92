"""The client's address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy.

The header is read right to left, skipping trusted proxies, so a client cannot pick its own
address by prepending a fake entry: the first untrusted hop is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(peer: str, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    if not trusted or not forwarded_for:
        return peer
    networks = parse_networks(trusted)
    if not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer
