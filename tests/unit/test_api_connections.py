"""The cap on open connections per client address: counted per address, released when a
connection closes, refusals counted and logged once a minute per address."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.api.connections import ConnectionCap


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_address_has_its_own_allowance(caplog: pytest.LogCaptureFixture) -> None:
    refused: list[int] = []
    clock = Clock()
    cap = ConnectionCap(2, lambda: refused.append(1), clock)
    assert cap.admit("10.0.0.1") and cap.admit("10.0.0.1")
    with caplog.at_level(logging.WARNING, "gateway.api.connections"):
        assert not cap.admit("10.0.0.1")
        assert not cap.admit("10.0.0.1")  # within the minute: counted, not logged again
    assert cap.admit("10.0.0.2")
    assert len(refused) == 2
    (line,) = caplog.messages
    assert "10.0.0.1" in line and "GATEWAY_API_CONNECTIONS_PER_ADDRESS" in line
    cap.release("10.0.0.1")
    assert cap.admit("10.0.0.1")
    clock.now += 61
    caplog.clear()
    with caplog.at_level(logging.WARNING, "gateway.api.connections"):
        assert not cap.admit("10.0.0.1")
    assert caplog.messages[0].startswith("refused 2 connection(s) from 10.0.0.1")


def test_zero_means_no_cap() -> None:
    cap = ConnectionCap(0)
    assert all(cap.admit("10.0.0.1") for _ in range(10_000))


class Transport(asyncio.Transport):
    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default

    def close(self) -> None:
        self.closed = True


class Recording(asyncio.Protocol):
    def __init__(self) -> None:
        self.events: list[object] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")


def test_the_gate_passes_admitted_connections_through_and_closes_the_others() -> None:
    cap = ConnectionCap(1)
    made: list[Recording] = []

    def make() -> Recording:
        made.append(Recording())
        return made[-1]

    first, second = cap.gate(make)(), cap.gate(make)()
    one, two = Transport("10.0.0.1"), Transport("10.0.0.1")
    first.connection_made(one)
    second.connection_made(two)
    assert two.closed and not one.closed
    second.data_received(b"GET / HTTP/1.1\r\n")  # nothing reaches a protocol
    second.connection_lost(None)
    first.data_received(b"GET / HTTP/1.1\r\n")
    assert len(made) == 1 and made[0].events == ["made", b"GET / HTTP/1.1\r\n"]
    first.connection_lost(None)
    assert made[0].events[-1] == "lost" and cap.open == {}
