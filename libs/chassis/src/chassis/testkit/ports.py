"""Ports for servers a test starts: free now, and outside the kernel's ephemeral range.

A port is chosen before its server binds it (its number goes into the gateway's routes, a
service's settings, a proxy). Asking the kernel for one (``bind(port 0)``) hands out a port from
the ephemeral range, the same range every *outgoing* connection takes its local port from: with
a whole stack connecting to PostgreSQL and RabbitMQ while it starts, one of those connections
sometimes took the port first, and the server died with "address already in use". Ports below
that range are never given to an outgoing connection, so only another test's server could take
one, and each is picked at random and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Where the search starts: above the well-known and most registered services' ports.
LOWEST = 10_000
# Linux's default start of the ephemeral range, when /proc does not say.
EPHEMERAL_START = 32_768


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that nothing listens on right now, below the ephemeral range."""
    ceiling = _ephemeral_start()
    candidates = random.sample(range(LOWEST, ceiling), ceiling - LOWEST)
    ports: list[int] = []
    for port in candidates:
        if _bindable(host, port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free ports between {LOWEST} and {ceiling} on {host}")


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


def _ephemeral_start() -> int:
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_START
    return start if start > LOWEST + 1_000 else EPHEMERAL_START
