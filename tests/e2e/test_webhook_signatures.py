"""Every push is signed in the "Standard Webhooks" shape: a receiver that knows only the
published scheme and the unit's secret tells the gateway's calls from forgeries, and keeps
working through a rotation of the secret."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from datetime import timedelta

from gatewaystack import PUSH, SENDER, Stack

from gateway.client import GatewayClient, build_letter, sign_as_unit, unit


def receiver_accepts(
    secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300
) -> bool:
    """The receiver's check, written from the scheme (docs/api.md, "Signed webhooks")."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    timestamp = int(headers["webhook-timestamp"])
    if abs(time.time() - timestamp) > tolerance:
        return False
    signed = f"{headers['webhook-id']}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(candidate.removeprefix("v1,"), expected)
        for candidate in headers["webhook-signature"].split()
        if candidate.startswith("v1,")
    )


async def push_one(stack: Stack, number: str) -> tuple[dict[str, str], bytes]:
    seen = len(stack.webhook.received)
    letter = build_letter(unit(SENDER), [unit(PUSH)], "Về việc ký webhook", number=number)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        await gw.submit(sign_as_unit(letter, stack.keys))
    for _ in range(300):
        if len(stack.webhook.received) > seen:
            return stack.webhook.headers[seen], stack.webhook.received[seen][1]
        await asyncio.sleep(0.05)
    raise AssertionError("the push did not arrive")


async def test_pushes_are_signed_and_survive_a_rotation(stack: Stack) -> None:
    signer = stack.runtime.deliverer.signer
    first = (await signer.issue(PUSH, rotate=False)).secret
    headers, body = await push_one(stack, "81")
    assert headers["webhook-id"] == headers["x-gateway-delivery-id"]
    assert receiver_accepts(first, headers, body)
    assert not receiver_accepts(first, headers, body.replace(b"edXML", b"edXMl", 1))  # tampered
    forged = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}
    assert not receiver_accepts(first, forged, body)
    other = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    assert not receiver_accepts(other, headers, body)

    rotated = await signer.issue(PUSH, rotate=True)
    assert rotated.generation == 2 and rotated.secret != first
    headers, body = await push_one(stack, "82")  # during the overlap: both secrets sign
    assert len(headers["webhook-signature"].split()) == 2
    assert receiver_accepts(first, headers, body)
    assert receiver_accepts(rotated.secret, headers, body)

    signer.overlap = timedelta(0)  # the overlap has passed
    signer._cache.clear()
    headers, body = await push_one(stack, "83")
    assert receiver_accepts(rotated.secret, headers, body)
    assert not receiver_accepts(first, headers, body)
