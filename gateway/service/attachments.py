"""A document's attachments as the console shows them (name, type, size, SHA-256) and hands
them to an operator: read from the package exactly as it was accepted and signed."""

from __future__ import annotations

import asyncio

from gateway.db.engine import reader
from gateway.envelope.model import Attachment
from gateway.envelope.read import read_attachments
from gateway.envelope.xmlsafe import parse_xml
from gateway.errors import GatewayError
from gateway.service import searches
from gateway.service.core import Gateway


async def document_attachments(gateway: Gateway, key: str) -> tuple[Attachment, ...]:
    """The attachments of document ``key`` (not_found when there is no such document)."""
    async with reader(gateway.engine).connect() as conn:
        found = await searches.document_bytes(conn, key)
    if found is None:
        raise GatewayError("not_found", f"no document {key}")
    data = await gateway.bodies.get(found.raw_claim) if found.raw_claim else found.raw
    limits = gateway.settings.envelope

    def read() -> tuple[Attachment, ...]:
        # accepted before, so well-formed and within the limits: read, not checked again
        return read_attachments(parse_xml(data, limits, content_only=True))

    return await asyncio.to_thread(read)
