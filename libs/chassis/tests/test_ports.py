"""Ports for test servers: free, distinct, and never in the range outgoing connections use."""

from __future__ import annotations

import socket
from pathlib import Path

from chassis.testkit import free_port, free_ports


def ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = free_ports(20)
    assert len(set(ports)) == 20
    low, _ = ephemeral_range()
    assert all(port < low for port in ports)
    for port in ports:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()


def test_a_port_something_listens_on_is_never_given():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        assert busy not in free_ports(500)
