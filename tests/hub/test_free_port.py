"""Ports for servers the tests and `up` start: free, distinct, and never ones the kernel hands to clients."""

from __future__ import annotations

import socket

import pytest

from hub import broker
from hub.broker import _ephemeral_low, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(port < _ephemeral_low() for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", ports[-1]))


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    first = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", first))
        server.listen()
        monkeypatch.setattr(broker, "_LISTEN_PORTS", range(first, first + 2))
        monkeypatch.setattr(broker, "_handed_out", set())
        assert free_port() == first + 1
