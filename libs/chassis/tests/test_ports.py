"""Ports for test servers: free, distinct, and never in the range outgoing connections use."""

from __future__ import annotations

import socket

from chassis.testkit import free_port, free_ports
from chassis.testkit.ports import ephemeral_range


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    ports = free_ports(20)
    assert len(set(ports)) == 20
    low, high = ephemeral_range()
    assert not [port for port in ports if low <= port <= high]
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
