"""A link at work inside the gateway: the copies queued for it are sent with ``sendEdoc``
(the bus retries, expires and dead-letters them like any push, each step a ledger event),
and what the upstream holds for us is polled (``getReceivedEdocList``, ``getEdoc``), submitted
as received from the link, and acknowledged (``updateStatus``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from adapters.upstream.client import (
    TRANSIENT_CODES,
    AxisClient,
    UpstreamRefused,
    UpstreamUnavailable,
    refusal,
)
from adapters.upstream.links import Link
from gateway.bus import Message, Subscription
from gateway.envelope import BusinessType, Kind, Profile, parse_package
from gateway.errors import GatewayError, PackageRejected
from gateway.service.core import Gateway
from gateway.service.routing import UPSTREAM_TO
from gateway.service.tokens import Principal, Role

log = logging.getLogger(__name__)

MESSAGE_TYPES = {
    BusinessType.NEW: "edoc",
    BusinessType.REVOKE: "revocation",
    BusinessType.UPDATE: "update",
    BusinessType.REPLACE: "replacement",
}


def link_principal(link: Link) -> Principal:
    """Who a package from the link is submitted as: the link (its upstream's systemId)."""
    return Principal(f"link:{link.name}", link.peer or link.system_id, Role.UNIT)


def protocol_types(data: bytes) -> tuple[str, str, str]:
    """The sender, servicetype and messagetype of a package the gateway accepted."""
    package = parse_package(data, Profile.COMPAT)
    if package.kind is Kind.STATUS:
        return package.sender.organ_id, "status", "status"
    business = package.business.doc_type if package.business else BusinessType.NEW
    return package.sender.organ_id, "eDoc", MESSAGE_TYPES[business]


class LinkRelay:
    """Sends the copies on a link's queue; polls the link."""

    def __init__(self, gateway: Gateway, link: Link, session: aiohttp.ClientSession) -> None:
        self.gateway = gateway
        self.link = link
        self.client = AxisClient(link, session)

    async def send(self, message: Message) -> None:
        """The bus handler of the link's queue: one copy, for the unit its header names."""
        recipient = message.headers.get(UPSTREAM_TO)
        if not recipient:
            raise GatewayError("delivery_failed", f"{message.delivery_id} names no recipient")
        sender, service_type, message_type = protocol_types(message.body)
        try:
            doc_id = await self.client.send_edoc(
                message.body, sender, [recipient], service_type, message_type
            )
        except (UpstreamRefused, UpstreamUnavailable) as e:
            raise refusal(e) from e
        log.info(
            "link %s took %s for %s as DocId %s",
            self.link.name,
            message.delivery_id,
            recipient,
            doc_id,
        )

    async def poll(self) -> int:
        """One look at what the upstream holds for us: every letter and status packet is
        submitted as received from the link, then acknowledged (``done``; ``fail`` when the
        gateway refused it, with the refusal ledgered). Returns how many were taken."""
        taken = 0
        for service_type in ("eDoc", "status"):
            for item in await self.client.received(service_type):
                if await self._take(item):
                    taken += 1
        return taken

    async def _take(self, item: dict[str, Any]) -> bool:
        doc_id = str(item["docId"])
        data = await self.client.get_edoc(doc_id)
        try:
            await self.gateway.submit(
                data, link_principal(self.link), self.link.profile, origin=self.link
            )
        except GatewayError as e:
            if not isinstance(e, PackageRejected) and e.code in TRANSIENT_CODES:
                return False  # the gateway cannot take it now: the next poll tries again
            log.warning("link %s: %s refused: %s %s", self.link.name, doc_id, e.code, e.message)
            await self.client.update_status(doc_id, "fail")
            return False
        await self.client.update_status(doc_id, "done")
        return True

    async def run_polls(self) -> None:
        """Poll every ``link.poll`` seconds until cancelled; a failed poll is logged."""
        while True:
            try:
                await self.poll()
            except (UpstreamRefused, UpstreamUnavailable) as e:
                log.warning("link %s: poll failed: %s", self.link.name, e)
            except Exception:
                log.exception("link %s: poll failed", self.link.name)
            await asyncio.sleep(self.link.poll)


class Federation:
    """Every link's sender (a consumer of its bus queue) and poller, started and stopped with
    the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.session: aiohttp.ClientSession | None = None
        self.subscriptions: list[Subscription] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        links = self.gateway.links
        if not len(links):
            return
        self.session = aiohttp.ClientSession()
        for link in links:
            relay = LinkRelay(self.gateway, link, self.session)
            self.subscriptions.append(await self.gateway.bus.consume(link.queue, relay.send))
            self.tasks.append(asyncio.create_task(relay.run_polls(), name=f"poll-{link.name}"))

    async def stop(self, grace: float = 10.0) -> None:
        await asyncio.gather(*(s.stop(grace) for s in self.subscriptions), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.subscriptions.clear()
        self.tasks.clear()
        if self.session is not None:
            await self.session.close()
