"""Ports for servers that restart: outside the range outgoing connections draw from."""

from __future__ import annotations

import socket

from naqd.serverbin import LOWEST_PORT, ephemeral_range, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    low, _ = ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(LOWEST_PORT <= p < low for p in ports)
    assert len(ports) > 1  # drawn at random, not a sequence every test worker repeats
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_returned() -> None:
    listeners = []
    try:
        for _ in range(50):
            s = socket.socket()
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            listeners.append(s)
        taken = {s.getsockname()[1] for s in listeners}
        assert len(taken) == 50
    finally:
        for s in listeners:
            s.close()
