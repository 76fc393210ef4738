"""The loop every adapter shares: submit what the agency system put out, hand it what the
gateway holds for its unit, and acknowledge each copy only once the system has it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from adapters.base import AgencyAdapter
from gateway.client import (
    MAX_INBOX_WAIT,
    ApiError,
    GatewayClient,
    GatewayUnreachable,
    listed_package,
)

log = logging.getLogger(__name__)

# Answers after which the same package is tried again later rather than given up: the gateway
# is busy, starting or short of time, not saying no to the package.
RETRY_LATER = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Pass:
    """What one pass did."""

    sent: int = 0
    refused: int = 0
    delivered: int = 0
    deferred: int = 0  # left for the next pass (the gateway asked to wait)


class Connector:
    """Runs one adapter against the gateway's HTTP API with the unit's token."""

    def __init__(self, adapter: AgencyAdapter, client: GatewayClient) -> None:
        self.adapter = adapter
        self.client = client

    async def run_once(self) -> Pass:
        """One pass: every outgoing package, then every waiting copy."""
        done = Pass()
        await self._send(done)
        await self._receive(done)
        return done

    async def run(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Passes until ``stop`` is set, ``interval`` seconds apart, or sooner when a copy
        arrives for the unit (the gateway holds the inbox's answer until then: a long poll);
        an unreachable gateway is waited for, not given up on."""
        while not stop.is_set():
            try:
                await self.run_once()
                await self._idle(stop, interval)
            except GatewayUnreachable as e:
                log.warning("%s; trying again in %g s", e, interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    async def _idle(self, stop: asyncio.Event, interval: float) -> None:
        """Until ``stop``, ``interval`` seconds, or a copy in the unit's inbox."""
        started = asyncio.get_running_loop().time()
        wait = min(int(interval), MAX_INBOX_WAIT)
        if wait >= 1:
            polling = asyncio.ensure_future(self.client.inbox(limit=1, wait=wait))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (polling, stopping):
                    task.cancel()
            if polling.done() and not polling.cancelled() and await _copy_waits(polling):
                return  # a copy: the next pass now
        left = interval - (asyncio.get_running_loop().time() - started)
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), left)

    async def _send(self, done: Pass) -> None:
        for item in self.adapter.outgoing():
            try:
                submitted = await self.client.submit(item.data)
            except ApiError as e:
                if e.status in RETRY_LATER:
                    log.warning("%s: %s; sent again later", item.ref, e)
                    done.deferred += 1
                    return  # keep the order: nothing after it goes first
                where = e.problem.get("where")
                self.adapter.refused(item, e.code, e.detail, None if where is None else str(where))
                log.info("refused %s: %s %s", item.ref, e.code, e.detail)
                done.refused += 1
                continue
            self.adapter.sent(item, submitted.document_key)
            again = " (answered before: sent again after a restart)" if submitted.replayed else ""
            log.info("sent %s as %s%s", item.ref, submitted.document_key, again)
            done.sent += 1

    async def _receive(self, done: Pass) -> None:
        after: str | None = None
        try:
            while True:
                page = await self.client.inbox(after=after, packages=True)
                for item in page["items"]:
                    # a package too large for the listing is fetched on its own
                    copy = listed_package(item) or await self.client.fetch(item["delivery_id"])
                    self.adapter.deliver(copy)
                    await self.client.ack(copy.delivery_id)
                    self.adapter.acknowledged(copy.delivery_id)
                    log.info("delivered %s (%s)", copy.delivery_id, copy.document_key)
                    done.delivered += 1
                after = page.get("next")
                if not after:
                    return
        except ApiError as e:
            if e.status not in RETRY_LATER:
                raise
            # What was handed over and not acknowledged is handed over again next pass, and
            # the adapter keeps it only once.
            log.warning("receiving: %s; the rest next pass", e)
            done.deferred += 1


async def _copy_waits(poll: asyncio.Future[dict[str, Any]]) -> bool:
    """Whether the long poll found a copy; a gateway that asked to wait means no."""
    try:
        return bool((await poll)["items"])
    except ApiError as e:
        if e.status not in RETRY_LATER:
            raise
        log.warning("waiting for copies: %s", e)
        return False
