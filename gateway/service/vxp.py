"""The national-axis façade's calls as the gateway's own operations: a façade system is its
unit's principal, so its letters are submissions, its received list is the unit's pull inbox,
its acknowledgements are the inbox's, its sent list is the document view and its agency list
is the directory. Nothing here stores or routes anything itself: a package sent through the
façade leaves the same ledger events and deliveries as the same package sent natively."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.envelope import STATUS_CODES, BusinessType, Kind, Package
from gateway.errors import GatewayError
from gateway.service import store, vxp_store
from gateway.service.core import Gateway
from gateway.service.tokens import Principal
from gateway.service.views import document_view

# servicetype <-> the gateway's kinds of package
SERVICE_TYPES = {"eDoc": Kind.DOCUMENT, "status": Kind.STATUS}
SERVICE_OF = {kind: name for name, kind in SERVICE_TYPES.items()}
# messagetype of a letter <-> its Business block (no block: a new letter)
MESSAGE_TYPES = {
    "edoc": BusinessType.NEW,
    "revocation": BusinessType.REVOKE,
    "update": BusinessType.UPDATE,
    "replacement": BusinessType.REPLACE,
}
RECEIVED_LIMIT = 1000  # items one getReceivedEdocList answers at most (the oldest first)
PAGE = 500


def service_kind(value: str | None) -> Kind:
    if value not in SERVICE_TYPES:
        raise GatewayError("bad_request", f"servicetype must be eDoc or status, not {value!r}")
    return SERVICE_TYPES[value]


def check_message_type(kind: Kind, value: str | None) -> None:
    allowed = ("status",) if kind is Kind.STATUS else tuple(MESSAGE_TYPES)
    if value not in allowed:
        raise GatewayError(
            "bad_request", f"messagetype must be {' or '.join(allowed)}, not {value!r}"
        )


def expected(
    kind: Kind, message_type: str, to: list[str], relayed_from: str | None = None
) -> Callable[[Package], None]:
    """What a sendEdoc's headers say the package is: the façade refuses a package that is
    something else rather than route it by one and record it as the other. A package relayed
    by an upstream link (``relayed_from``: the ``from`` header) must be from that sender, and
    ``to`` names those of its recipients the link brings it for."""

    def check(package: Package) -> None:
        if relayed_from is not None and package.sender.organ_id != relayed_from:
            raise GatewayError(
                "bad_request", f"from is {relayed_from}; the file is from {package.sender.organ_id}"
            )
        if package.kind is not kind:
            raise GatewayError(
                "bad_request", f"servicetype {SERVICE_OF[kind]}, but the file is a {package.kind}"
            )
        if kind is Kind.DOCUMENT:
            business = package.business.doc_type if package.business else BusinessType.NEW
            if MESSAGE_TYPES[message_type] is not business:
                raise GatewayError(
                    "bad_request",
                    f"messagetype {message_type}, but the letter's Business type is "
                    f"{business.name.lower()}",
                )
        recipients = sorted(r.organ_id for r in package.recipients)
        if relayed_from is not None and (kind is Kind.STATUS or set(to) <= set(recipients)):
            return  # a status goes where the workflow says (a recall to the recipients)
        if sorted(set(to)) != recipients:
            raise GatewayError(
                "bad_request",
                f"to names {', '.join(sorted(set(to)))}; the file is for {', '.join(recipients)}",
            )

    return check


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


async def received(gateway: Gateway, unit: str, kind: Kind) -> list[dict[str, Any]]:
    """getReceivedEdocList: the copies of ``kind`` waiting in the unit's inbox, oldest first.
    ``docId`` is the copy's delivery id, the one getEdoc, downloadEdoc and updateStatus take."""
    items: list[dict[str, Any]] = []
    after = 0
    while len(items) < RECEIVED_LIMIT:
        page = await gateway.inboxes.page(unit, after=after, limit=PAGE)
        for e in page.entries:
            if e.kind != kind:
                continue
            items.append(
                {
                    "docId": e.delivery_id,
                    "serviceType": SERVICE_OF[kind],
                    "messageType": "status" if kind is Kind.STATUS else "edoc",
                    "from": e.sender,
                    "to": [unit],
                    "status": "inbox",
                    "status_desc": f"waiting in the inbox, attempt {e.attempt}",
                    "created_time": _time(e.queued_at),
                    "updated_time": _time(e.queued_at),
                }
            )
        if page.next is None:
            break
        after = page.next
    return items[:RECEIVED_LIMIT]


async def count(gateway: Gateway, unit: str, kind: Kind) -> int:
    """countReceiveEdoc / countReceiveStatus: what getReceivedEdocList would list."""
    async with gateway.engine.connect() as conn:
        return await vxp_store.inbox_count(conn, unit, kind.value)


def _notation(document_id: str) -> str:
    """The number/notation part of a DocumentId (``OrganId,yyyy/mm/dd,number/notation``)."""
    parts = document_id.split(",", 2)
    return parts[2] if len(parts) == 3 else document_id


async def sent(gateway: Gateway, principal: Principal, package_id: str) -> list[dict[str, Any]]:
    """getSentEdocList: per recipient of a package the system sent (``docId`` is sendEdoc's
    DocId), where its copy is and the recipient's last business status."""
    async with gateway.engine.connect() as conn:
        package = await vxp_store.sent_package(conn, package_id)
        progress = await store.copy_progress(conn, package_id)
    if package is None or package.sender != principal.unit:
        raise GatewayError("not_found", f"no package {package_id} sent by {principal.unit}")
    business: dict[str, str | None] = {}
    if package.kind == Kind.DOCUMENT.value:
        view = await document_view(gateway.ledger, principal, package.document_key)
        business = {r["code"]: r["business"] for r in view["recipients"]}
    return [
        {
            "toCode": code,
            "sendStatus": copy.transport,
            "receiveStatus": business.get(code) or "",
            "receiveStatusDesc": STATUS_CODES.get(business.get(code) or "", ""),
            "sentTime": _time(package.submitted_at),
            "receivedTime": _time(copy.transport_at) if copy.transport == "delivered" else None,
            "notation": _notation(package.document_id),
            "title": package.subject or "",
        }
        for code, copy in progress.items()
    ]


def agencies(gateway: Gateway) -> list[dict[str, Any]]:
    """getAgenciesList: the directory's units (a suspended unit is listed as deleted: it
    neither sends nor receives while suspended)."""
    return [
        {
            "code": u.code,
            "oldCode": "",
            "pid": u.parent_code or "",
            "name": u.name,
            "deleted": not u.active,
        }
        for u in gateway.directory
    ]
