"""Open connections per client address: the HTTP server's protocols are made through a gate
that closes a new connection at once when its address already holds as many as allowed, so
one client cannot take all the process's sockets (the header timeout only frees them later)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LOG_EVERY = 60.0  # seconds between log lines about one address's refused connections


class ConnectionCap:
    """At most ``per_address`` open connections from each client address (0: no cap).
    ``on_refuse`` is called for each connection closed for being one too many."""

    def __init__(
        self,
        per_address: int,
        on_refuse: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address = per_address
        self.on_refuse = on_refuse
        self.clock = clock
        self.open: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()  # since the address's last log line
        self._logged: dict[str, float] = {}

    def admit(self, address: str) -> bool:
        """Count one more connection from ``address``, or say no (and log it, now and then)."""
        if self.per_address and self.open[address] >= self.per_address:
            self.on_refuse()
            self._refused[address] += 1
            now = self.clock()
            if now - self._logged.get(address, -LOG_EVERY) >= LOG_EVERY:
                log.warning(
                    "refused %d connection(s) from %s: it already has %d open, the most "
                    "GATEWAY_API_CONNECTIONS_PER_ADDRESS allows",
                    self._refused.pop(address),
                    address,
                    self.open[address],
                )
                self._logged[address] = now
                if len(self._logged) > 10_000:  # forget addresses that went quiet
                    self._logged = {a: t for a, t in self._logged.items() if now - t < LOG_EVERY}
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def gate(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that admits connections through the
        cap and hands the admitted ones to the protocols ``make`` returns."""
        return lambda: _Gate(self, make)


class _Gate(asyncio.Protocol):
    """One connection: refused and closed, or passed through to the HTTP protocol."""

    def __init__(self, cap: ConnectionCap, make: Callable[[], asyncio.Protocol]) -> None:
        self._cap = cap
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer: Any = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if not self._cap.admit(address):
            transport.close()
            return
        self._address = address
        self._inner = self._make()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._cap.release(self._address)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
