"""Ports for servers a test starts: free now, and outside the kernel's ephemeral range.

A port is chosen before its server binds it (its number goes into the gateway's routes, a
service's settings, a proxy). Asking the kernel for one (``bind(port 0)``) hands out a port from
the ephemeral range, the same range every *outgoing* connection takes its local port from: with
a whole stack connecting to PostgreSQL and RabbitMQ while it starts, one of those connections
sometimes took the port first, and the server died with "address already in use". Ports outside
that range (from ``LOWEST`` up to it, and above it) are never given to an outgoing connection,
so only another test's server could take one, and each is picked at random and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Where the search starts: above the well-known and most registered services' ports.
LOWEST = 10_000
# Linux's default ephemeral range, when /proc does not say.
EPHEMERAL = (32_768, 60_999)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that nothing listens on right now, outside the ephemeral range."""
    low, high = ephemeral_range()
    outside = [*range(LOWEST, low), *range(max(LOWEST, high + 1), 65_536)]
    ports: list[int] = []
    for port in random.sample(outside, len(outside)):
        if _bindable(host, port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free ports outside the ephemeral range {low}-{high} on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """One port that nothing listens on right now (``free_ports``)."""
    return free_ports(1, host)[0]


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (first, last)."""
    try:
        low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return EPHEMERAL
    return low, high
