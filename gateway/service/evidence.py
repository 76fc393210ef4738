"""Acknowledgements of reception as the service takes them: the per-unit policy (whether a
unit must sign), the check of a signed statement against the trust store and the directory,
and the rows that keep the statements for receipts and evidence bundles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.bus import ClaimStore
from gateway.config import LedgerSettings
from gateway.db.engine import reader
from gateway.directory import Directory
from gateway.envelope import Kind
from gateway.errors import ConfigError, GatewayError
from gateway.evidence.ack import verify_ack
from gateway.evidence.bundle import Materials, build_bundle
from gateway.ledger import Receipt, SqlLedger
from gateway.ledger.cosignature import WitnessKey
from gateway.service import store
from gateway.service.models import ack_table, package_table
from gateway.trust import TrustStore
from gateway.trust.verify import speaks_for


@dataclass(frozen=True)
class Received:
    """How a recipient acknowledged a copy: ``statement`` is the verified JWS, or None for an
    unsigned acknowledgement (allowed only where the policy does not require a signature)."""

    statement: str | None = None
    sha256: str | None = None  # of the JWS
    delivery_id: str | None = None  # what the statement says it is about...
    package_sha256: str | None = None  # ...and that it received

    def details(self) -> dict[str, str]:
        """What the ``delivered`` ledger entry says of the acknowledgement."""
        if self.statement is None or self.sha256 is None:
            return {"ack": "unsigned"}
        return {"ack": "signed", "ack_sha256": self.sha256}


def configured_witnesses(settings: LedgerSettings) -> tuple[WitnessKey, ...]:
    """The witnesses whose cosignatures the gateway keeps (GATEWAY_LEDGER_WITNESSES)."""
    try:
        return tuple(WitnessKey.from_vkey(v) for v in settings.witnesses)
    except ValueError as e:
        raise ConfigError(f"GATEWAY_LEDGER_WITNESSES: {e}") from e


def signature_required(settings: LedgerSettings, unit: str) -> bool:
    return "*" in settings.signed_ack or unit in settings.signed_ack


def received(
    settings: LedgerSettings,
    trust: TrustStore,
    directory: Directory,
    now: datetime,
    unit: str,
    statement: str | None,
) -> Received:
    """Check ``unit``'s acknowledgement before anything is written (CPU work, no database):
    a signed statement must verify, chain to the trust store, be signed by a certificate that
    speaks for the unit and name the unit; without one, the policy must allow it. Which copy
    it names is checked by ``bind_ack``, against the copy."""
    if statement is None:
        if signature_required(settings, unit):
            raise GatewayError(
                "ack_signature_required",
                f"{unit} must acknowledge its copies with a signed statement",
            )
        return Received()
    verified = verify_ack(statement, trust, now=now)
    said = verified.statement
    if said.recipient != unit:
        raise GatewayError("ack_invalid", f"the statement is by {said.recipient}, not {unit}")
    if not speaks_for(unit, verified.signer.sha256, verified.signer.organ_ids, directory):
        raise GatewayError(
            "ack_invalid", f"the statement's signer certificate does not speak for {unit}"
        )
    return Received(statement, verified.sha256, said.delivery_id, said.package_sha256)


_p = package_table.c


async def _package_sha256(conn: AsyncConnection, package_id: str) -> str | None:
    sha: str | None = await conn.scalar(select(_p.sha256).where(_p.package_id == package_id))
    return sha


async def bind_ack(
    conn: AsyncConnection, ack: Received, copy: store.Copy, now: datetime
) -> dict[str, str]:
    """Keep a signed acknowledgement of ``copy`` once it is known to name that copy and the
    bytes of its package (ack_invalid otherwise); the details for its ``delivered`` entry."""
    if ack.statement is None:
        return ack.details()
    if ack.delivery_id != copy.delivery_id:
        raise GatewayError(
            "ack_invalid", f"the statement is about {ack.delivery_id}, not {copy.delivery_id}"
        )
    if ack.package_sha256 != await _package_sha256(conn, copy.package_id):
        raise GatewayError(
            "ack_invalid", "the statement names other package bytes than this copy's"
        )
    a = ack_table.c
    if await conn.scalar(select(a.delivery_id).where(a.delivery_id == copy.delivery_id)):
        return ack.details()  # kept before (a push answered again after a redelivery)
    await conn.execute(
        insert(ack_table).values(
            delivery_id=copy.delivery_id,
            document_key=copy.document_key,
            recipient=copy.recipient,
            statement=ack.statement,
            sha256=ack.sha256,
            acknowledged_at=now,
        )
    )
    return ack.details()


async def ack_details(conn: AsyncConnection, delivery_id: str) -> dict[str, str]:
    """The ``delivered`` details of an acknowledgement kept before the bus reported the
    delivery (a webhook's answer); none when there is none."""
    a = ack_table.c
    query = select(a.statement, a.sha256).where(a.delivery_id == delivery_id)
    row = (await conn.execute(query)).first()
    return {} if row is None else Received(row.statement, row.sha256).details()


@dataclass(frozen=True, slots=True)
class StoredPackage:
    """A package about a document (the letter, or a status packet), with where its bytes are."""

    kind: str
    ledger_seq: int
    raw: bytes
    raw_claim: str | None


async def packages_of(conn: AsyncConnection, key: str) -> list[StoredPackage]:
    """The letter ``key`` and the status packets about it, in ledger order."""
    query = (
        select(_p.kind, _p.ledger_seq, _p.raw, _p.raw_claim)
        .where(_p.document_key == key)
        .order_by(_p.ledger_seq)
    )
    return [StoredPackage(*row) for row in await conn.execute(query)]


@dataclass(frozen=True)
class StoredAck:
    delivery_id: str
    recipient: str
    statement: str
    acknowledged_at: datetime


async def acks_of(
    conn: AsyncConnection, document_key: str, recipient: str | None = None
) -> list[StoredAck]:
    """The acknowledgements of a document's copies (one recipient's, when given)."""
    a = ack_table.c
    stmt = select(a.delivery_id, a.recipient, a.statement, a.acknowledged_at).where(
        a.document_key == document_key
    )
    if recipient is not None:
        stmt = stmt.where(a.recipient == recipient)
    return [StoredAck(*row) for row in await conn.execute(stmt.order_by(a.delivery_id))]


async def receipt_with_acks(
    ledger: SqlLedger, document_key: str, recipient: str | None = None
) -> Receipt:
    """The document's receipt (one recipient's, when given) with the signed acknowledgements
    its ``delivered`` entries name."""
    receipt = await ledger.receipt_for_document(document_key, recipient)
    async with reader(ledger.engine).connect() as conn:
        acks = await acks_of(conn, document_key, recipient)
    signed = tuple(a.statement for a in acks)
    return dataclasses.replace(receipt, acknowledgements=signed)


async def bundle_for(
    ledger: SqlLedger, trust: TrustStore, bodies: ClaimStore, document_key: str, now: datetime
) -> bytes:
    """The letter's evidence bundle (gateway.evidence.bundle), signed with the ledger's key;
    ``bodies`` holds the packages too large for their database row."""
    if ledger.signer is None:
        raise GatewayError("config_invalid", "evidence bundles need the gateway's signing key")
    receipt = await receipt_with_acks(ledger, document_key)
    async with reader(ledger.engine).connect() as conn:
        packages = await packages_of(conn, document_key)
        acks = await acks_of(conn, document_key)
    letter = [p for p in packages if p.kind == Kind.DOCUMENT.value]
    if not letter:
        raise GatewayError("not_found", f"no document {document_key}")

    async def body(p: StoredPackage) -> bytes:
        return await bodies.get(p.raw_claim) if p.raw_claim else p.raw

    ca_pem, crls_pem = trust.to_pem()
    materials = Materials(
        document_key=document_key,
        package=await body(letter[0]),
        receipt=receipt.to_json(),
        acknowledgements={a.delivery_id: a.statement for a in acks},
        statuses={p.ledger_seq: await body(p) for p in packages if p.kind != Kind.DOCUMENT.value},
        ca_pem=ca_pem,
        crls_pem=crls_pem,
    )
    return build_bundle(materials, ledger.signer, now)
