"""A client of the gateway's HTTP API (docs/api.md) for agency systems, operators and scripts,
and the builders of the letters and status packets they submit.

The builders are pure (a model in, a model out); ``sign_as_unit`` signs with a key folder;
``GatewayClient`` is the only part that talks to the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from gateway.config import EnvelopeSettings, Secret
from gateway.directory import Directory
from gateway.envelope import (
    STATUS_CODES,
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentType,
    Kind,
    Organization,
    Package,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusInfo,
    TraceHeader,
    build_package,
    make_document_id,
    names,
)
from gateway.envelope.names import DOCUMENT_ID, parse_date
from gateway.envelope.parse import DEFAULT_LIMITS, header_block
from gateway.envelope.xmlsafe import parse_xml
from gateway.errors import PackageRejected
from gateway.evidence.ack import Statement, sign_ack
from gateway.trust import load_unit_signer, sign_package

# edXML dates and timestamps carry no zone; agency systems write Vietnam time, which has had
# no daylight saving since 1975, so a fixed offset is exact (and needs no tz database).
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")
MAX_INBOX_WAIT = 30  # seconds an empty inbox's answer may be waited for (GET /v1/inbox?wait=)
LETTER_TYPE = DocumentType(1, 0, "Công văn")
DEFAULT_NOTATION = "CV"
BUSINESS_TYPES = {
    "revoke": BusinessType.REVOKE,
    "update": BusinessType.UPDATE,
    "replace": BusinessType.REPLACE,
}

# Built from Python's own table only (no system mime.types), so that every machine guesses
# the same type; office formats that table lacks are added.
_TYPES = mimetypes.MimeTypes(filenames=())
for _ext, _type in {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".rar": "application/vnd.rar",
    ".7z": "application/x-7z-compressed",
}.items():
    _TYPES.add_type(_type, _ext)


def vietnam_now() -> datetime:
    """The current time in Vietnam, naive, as edXML timestamps are written."""
    return datetime.now(UTC).astimezone(VIETNAM_TIME).replace(tzinfo=None)


def guess_content_type(name: str) -> str:
    return _TYPES.guess_type(name, strict=False)[0] or "application/octet-stream"


def make_attachment(
    name: str, data: bytes, index: int = 1, description: str | None = None
) -> Attachment:
    """Attachment number ``index`` (ContentId ``cid:att-<index>``), its type from its name."""
    return Attachment(f"cid:att-{index}", name, guess_content_type(name), data, description)


def unit(code: str, directory: Directory | None = None) -> Organization:
    """A unit as sender or recipient: its name from the directory, else its code as the name
    (the strict profile requires an OrganName)."""
    found = directory.get(code) if directory is not None else None
    return Organization(code, found.name if found is not None else code)


def default_number(now: datetime) -> str:
    """A document number unique for a sender to the millisecond: HHMMSSmmm."""
    return f"{now:%H%M%S}{now.microsecond // 1000:03d}"


def split_document_key(key: str) -> tuple[str, str]:
    """``<sender OrganId>|<DocumentId>`` as (sender, DocumentId); ValueError if malformed."""
    sender, sep, document_id = key.partition("|")
    if not sep or not sender or DOCUMENT_ID.fullmatch(document_id) is None:
        raise ValueError(
            f"{key!r} is not a document key '<sender>|<OrganId>,<yyyy/MM/dd>,<number>/<notation>'"
        )
    return sender, document_id


def target_document_id(target: str) -> str:
    """The DocumentId a revoke, update or replace names: a DocumentId, or a document key."""
    document_id = split_document_key(target)[1] if "|" in target else target
    if DOCUMENT_ID.fullmatch(document_id) is None:
        raise ValueError(
            f"{target!r} is not a DocumentId '<OrganId>,<yyyy/MM/dd>,<number>/<notation>'"
        )
    return document_id


def business_change(kind: str | BusinessType, target: str, reason: str | None = None) -> Business:
    """The Bussiness block of a revoke (1), update (2) or replace (3) of ``target``."""
    doc_type = BUSINESS_TYPES[kind] if isinstance(kind, str) else BusinessType(kind)
    if doc_type is BusinessType.NEW:
        raise ValueError("a business change is a revoke, an update or a replace")
    return Business(doc_type=doc_type, reason=reason, document_id=target_document_id(target))


def build_letter(
    sender: Organization,
    recipients: Sequence[Organization],
    subject: str,
    *,
    content: str | None = None,
    attachments: Sequence[Attachment] = (),
    priority: int = 0,
    number: str | None = None,
    notation: str = DEFAULT_NOTATION,
    business: Business | None = None,
    document_type: DocumentType = LETTER_TYPE,
    signer: SignerInfo | None = None,
    place: str | None = None,
    now: datetime | None = None,
) -> Package:
    """An official letter (công văn) ready for ``build_package``: DocumentId
    ``<sender>,<today>,<number>/<notation>``, one TraceHeader of the sender at ``now`` (Vietnam
    time; default the current time). ValueError for what no gateway would accept."""
    now = now or vietnam_now()
    number = number or default_number(now)
    if not subject.strip():
        raise ValueError("the subject is empty")
    if not recipients:
        raise ValueError("a letter needs at least one recipient")
    codes = [r.organ_id for r in recipients]
    if len(set(codes)) != len(codes):
        raise ValueError(f"a recipient is named twice: {', '.join(codes)}")
    if not 0 <= priority <= 4:
        raise ValueError(f"priority {priority} is not 0 to 4")
    if not number.strip() or any(c in number for c in "/,"):
        raise ValueError(f"the number {number!r} must be non-empty without '/' or ','")
    if not notation.strip() or "," in notation:
        raise ValueError(f"the notation {notation!r} must be non-empty without ','")
    day = now.date()
    return Package(
        kind=Kind.DOCUMENT,
        sender=sender,
        recipients=tuple(recipients),
        document_id=make_document_id(sender.organ_id, day, number, notation),
        code=Code(number, notation),
        subject=subject,
        content=content,
        promulgation_place=place,
        promulgation_date=day,
        document_type=document_type,
        signer=signer,
        priority=priority,
        business=business,
        traces=(TraceHeader(sender.organ_id, now.replace(microsecond=0)),),
        attachments=tuple(attachments),
    )


def response_for(document_key: str) -> ResponseFor:
    """What a status packet answers, read from the document's key."""
    sender, document_id = split_document_key(document_key)
    match = DOCUMENT_ID.fullmatch(document_id)
    assert match is not None  # split_document_key checked it
    return ResponseFor(
        organ_id=sender,
        code=f"{match['number']}/{match['notation']}",
        promulgation_date=parse_date(match["date"]),
        document_id=document_id,
    )


def build_status(
    responder: Organization,
    document_key: str,
    code: str,
    *,
    description: str | None = None,
    staff: StaffInfo | None = None,
    now: datetime | None = None,
) -> Package:
    """A status packet (01…06, 13, 15, 16) from ``responder`` about the document
    ``document_key``, addressed to the document's sender. ValueError for an unknown code or
    a malformed key."""
    if code not in STATUS_CODES:
        raise ValueError(f"status code {code!r} is not one of {', '.join(STATUS_CODES)}")
    answered = response_for(document_key)
    return Package(
        kind=Kind.STATUS,
        sender=responder,
        recipients=(Organization(answered.organ_id),),
        document_id=answered.document_id,
        status=StatusInfo(
            code=code,
            timestamp=(now or vietnam_now()).replace(microsecond=0),
            response_for=answered,
            description=description,
            staff=staff,
        ),
    )


def sign_as_unit(package: Package, keys: Path) -> bytes:
    """The package built and signed with its sender's key and certificate from a key folder
    (``gateway keys init`` layout). ConfigError when the key is missing."""
    key, cert = load_unit_signer(keys, package.sender.organ_id)
    return sign_package(build_package(package), key, cert)


def sign_if_unsigned(
    data: bytes, keys: Path, limits: EnvelopeSettings = DEFAULT_LIMITS
) -> tuple[bytes, bool]:
    """An existing package (made by another system) as it should be submitted: signed with
    its sender's key from a key folder when it carries no signature yet, else unchanged, so
    that a folder of mixed files can be submitted as it is. Returns the bytes and whether
    they were signed here. PackageRejected when the bytes are not edXML; ConfigError when the
    sender's key is not in the folder."""
    root = parse_xml(data, limits, content_only=True)
    if next(root.iter(names.DS_SIGNATURE), None) is not None:
        return data, False
    first = header_block(root)
    sender = (
        first.findtext(f"{names.tag('From')}/{names.tag('OrganId')}") if first is not None else None
    )
    if not sender or not sender.strip():
        raise PackageRejected("not_edxml", "the package names no From/OrganId to sign as")
    key, cert = load_unit_signer(keys, sender.strip())
    return sign_package(data, key, cert, limits=limits), True


def sign_acknowledgement(
    delivery_id: str, data: bytes, unit_code: str, keys: Path, now: datetime | None = None
) -> str:
    """The signed statement that ``unit_code`` received copy ``delivery_id`` with exactly the
    bytes ``data``, signed with the unit's key from a key folder (a compact JWS)."""
    key, cert = load_unit_signer(keys, unit_code)
    statement = Statement(
        delivery_id,
        hashlib.sha256(data).hexdigest(),
        unit_code,
        (now or datetime.now(UTC)).replace(microsecond=0),
    )
    return sign_ack(statement, key, cert)


# -- HTTP ---------------------------------------------------------------------------------------


class ApiError(Exception):
    """The gateway answered with an error (a problem document, or another HTTP error)."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any]) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem
        super().__init__(f"{status} {code}: {detail}")


class GatewayUnreachable(Exception):
    """No answer from the gateway: connection refused or reset, DNS, TLS, timeout."""


@dataclass(frozen=True)
class Submitted:
    """The answer to a submission: 202 the first time, 200 for the same package again."""

    status: int
    answer: dict[str, Any]

    @property
    def document_key(self) -> str:
        return str(self.answer["document_key"])

    @property
    def replayed(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Fetched:
    """A copy from the inbox: the package bytes exactly as signed, and what the gateway says."""

    delivery_id: str
    document_key: str | None
    signature_state: str | None
    data: bytes


def listed_package(item: dict[str, Any]) -> Fetched | None:
    """A copy's package as a listing that carries them gives it (``GatewayClient.inbox(...,
    packages=True)``), like :meth:`GatewayClient.fetch`; None when the listing left it out
    (too large to list): fetch it."""
    package = item.get("package")
    if package is None:
        return None
    return Fetched(
        delivery_id=item["delivery_id"],
        document_key=item.get("document_key"),
        signature_state=item.get("signature_state"),
        data=base64.b64decode(package, validate=True),
    )


def _snake(reason: str | None, status: int) -> str:
    words = "".join(c if c.isalnum() else " " for c in (reason or "").lower()).split()
    return "_".join(words) or f"http_{status}"


class GatewayClient:
    """The gateway's HTTP API with a bearer token. Use as ``async with GatewayClient(url,
    token) as gw:``. Errors: ApiError (the gateway said no), GatewayUnreachable."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = Secret(token) if token else None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json, application/problem+json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        headers.update(extra or {})
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self.url + path
        # A large package (a scan) is sent from a file-like object, in pieces, rather than as
        # one write that holds the event loop.
        payload: Any = io.BytesIO(data) if data is not None and len(data) > 1024 * 1024 else data
        try:
            async with self._session.request(
                method, url, params=params, data=payload, json=body, headers=self._headers(headers)
            ) as response:
                content = await response.read()
                found = {k.lower(): v for k, v in response.headers.items()}
                if response.status >= 400:
                    raise _api_error(response.status, response.reason, found, content)
                return response.status, content, found
        except (aiohttp.ClientError, TimeoutError) as e:
            what = str(e) or type(e).__name__
            raise GatewayUnreachable(f"cannot reach the gateway at {self.url}: {what}") from e

    async def _json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, body, _ = await self._request(method, path, **kwargs)
        try:
            return status, json.loads(body)
        except ValueError as e:
            raise ApiError(status, "bad_response", f"the answer is not JSON: {e}", {}) from e

    async def submit(self, data: bytes, *, profile: str | None = None) -> Submitted:
        """POST /v1/packages: a signed package or status packet."""
        status, answer = await self._json(
            "POST",
            "/v1/packages",
            data=data,
            params={"profile": profile} if profile else None,
            headers={"Content-Type": "application/xml"},
        )
        return Submitted(status, answer)

    async def inbox(
        self,
        *,
        unit: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        wait: int | None = None,
        packages: bool = False,
    ) -> dict[str, Any]:
        """GET /v1/inbox: one page ``{"items": [...], "next": cursor|None}``. ``wait``: when
        the inbox is empty, wait up to that many seconds (at most MAX_INBOX_WAIT) for a copy.
        ``packages``: each item carries its package's bytes (``item["package"]``, base64; see
        :func:`listed_package`), except those too large to list (null: :meth:`fetch` them)."""
        params = {
            "unit": unit,
            "limit": None if limit is None else str(limit),
            "after": after,
            "wait": None if wait is None else str(wait),
            "include": "package" if packages else None,
        }
        _, page = await self._json(
            "GET", "/v1/inbox", params={k: v for k, v in params.items() if v is not None}
        )
        return dict(page)

    async def fetch(self, delivery_id: str) -> Fetched:
        """GET /v1/inbox/{id}: the package bytes exactly as signed."""
        return await self._fetched(f"/v1/inbox/{quote(delivery_id, safe='')}", delivery_id)

    async def delivery_body(self, delivery_id: str) -> Fetched:
        """GET /v1/deliveries/{id}/body: the bytes of a copy that reached an AMQP unit's
        queue as a claim (``gw-claim``), while the copy is live."""
        path = f"/v1/deliveries/{quote(delivery_id, safe='')}/body"
        return await self._fetched(path, delivery_id)

    async def _fetched(self, path: str, delivery_id: str) -> Fetched:
        _, body, headers = await self._request("GET", path, headers={"Accept": "application/xml"})
        return Fetched(
            delivery_id=headers.get("x-gateway-delivery-id", delivery_id),
            document_key=headers.get("x-gateway-document-key"),
            signature_state=headers.get("x-gateway-signature-state"),
            data=body,
        )

    async def ack(
        self, delivery_id: str, *, fail: str | None = None, acknowledgement: str | None = None
    ) -> dict[str, Any]:
        """POST /v1/inbox/{id}/ack: ``done`` (with the signed statement from
        ``sign_acknowledgement``, if given), or ``fail`` with a reason (offered again)."""
        body = {"result": "done"} if fail is None else {"result": "fail", "reason": fail}
        if acknowledgement is not None:
            body["acknowledgement"] = acknowledgement
        _, answer = await self._json(
            "POST", f"/v1/inbox/{quote(delivery_id, safe='')}/ack", body=body
        )
        return dict(answer)

    async def ack_all(self, acks: Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /v1/inbox/ack: several copies at once (at most 500), each a delivery id
        (``done``) or an acknowledgement as ``ack`` sends it plus its ``delivery_id``. Each
        answer is ``{"delivery_id", "state"}``, or ``{"delivery_id", "problem"}`` for one that
        was refused (the others stand), in the order given."""
        items = [{"delivery_id": a, "result": "done"} if isinstance(a, str) else a for a in acks]
        _, answer = await self._json("POST", "/v1/inbox/ack", body={"acks": items})
        return list(answer["results"])

    async def notices(self, *, unit: str | None = None, after: str | None = None) -> dict[str, Any]:
        """GET /v1/notices: one page ``{"notices": [...], "next": cursor|None}`` of the
        transport notices (expired, dead-lettered, redriven copies) not yet acknowledged."""
        params = {k: v for k, v in {"unit": unit, "after": after}.items() if v is not None}
        _, page = await self._json("GET", "/v1/notices", params=params)
        return dict(page)

    async def ack_notices(self, ids: list[str]) -> int:
        """POST /v1/notices/ack: how many of these notices were newly acknowledged."""
        _, answer = await self._json("POST", "/v1/notices/ack", body={"ids": ids})
        return int(answer["acknowledged"])

    async def document(self, key: str) -> dict[str, Any]:
        """GET /v1/documents/{key}: every recipient's transport state and status timeline."""
        _, answer = await self._json("GET", f"/v1/documents/{quote(key, safe='')}")
        return dict(answer)

    async def entries(self, **filters: str) -> dict[str, Any]:
        """GET /v1/ledger/entries: one page ``{"entries": [...], "next": cursor|None}``;
        filters: document, unit, event, since, until, limit, after."""
        _, page = await self._json("GET", "/v1/ledger/entries", params=filters)
        return dict(page)

    async def redrive(self, unit: str, ids: list[str] | None = None) -> int:
        """POST /v1/admin/redrive (operators): the unit's dead copies, all or these ids."""
        body: dict[str, Any] = {"unit": unit}
        body.update({"ids": ids} if ids else {"all": True})
        _, answer = await self._json("POST", "/v1/admin/redrive", body=body)
        return int(answer["redriven"])

    async def checkpoint(self, *, fresh: bool = False) -> str:
        """The latest signed checkpoint (GET), or one of the ledger as it is now (POST,
        auditors and operators, rate-limited)."""
        _, body, _ = await self._request(
            "POST" if fresh else "GET", "/v1/ledger/checkpoint", headers={"Accept": "text/plain"}
        )
        return body.decode("utf-8")

    async def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """GET /v1/ledger/consistency: the proof that the log of ``new_size`` extends the one
        of ``old_size`` (check it with gateway.ledger.merkle.verify_consistency)."""
        params = {"from": str(old_size), "to": str(new_size)}
        _, answer = await self._json("GET", "/v1/ledger/consistency", params=params)
        return [base64.b64decode(h) for h in answer["proof"]]

    async def post_cosignature(self, checkpoint: str, cosignature: str) -> dict[str, Any]:
        """POST /v1/ledger/cosignatures: a witness's cosignature line of one of the gateway's
        checkpoints (exactly as fetched); ``{"tree_size", "witness", "cosignatures"}``."""
        body = {"checkpoint": checkpoint, "cosignature": cosignature}
        _, answer = await self._json("POST", "/v1/ledger/cosignatures", body=body)
        return dict(answer)

    async def bundle(self, key: str) -> bytes:
        """GET /v1/ledger/bundles/{key}: the letter's evidence bundle (a zip)."""
        path = f"/v1/ledger/bundles/{quote(key, safe='')}"
        _, body, _ = await self._request("GET", path, headers={"Accept": "application/zip"})
        return body

    async def backlog(self, unit: str | None = None) -> dict[str, Any]:
        """GET /v1/admin/backlog (operators, auditors): what waits, per unit, and totals."""
        _, answer = await self._json(
            "GET", "/v1/admin/backlog", params={"unit": unit} if unit else None
        )
        return dict(answer)

    async def alerts(self) -> list[dict[str, Any]]:
        """GET /v1/alerts (operators, auditors): what needs looking at now."""
        _, answer = await self._json("GET", "/v1/alerts")
        return list(answer["alerts"])

    async def reload(self) -> dict[str, Any]:
        """POST /v1/admin/reload (operators): read the directory and trust files again."""
        _, answer = await self._json("POST", "/v1/admin/reload")
        return dict(answer)

    async def add_unit(self, code: str, fields: dict[str, str]) -> dict[str, Any]:
        """POST /v1/admin/units (operators): a new unit, in effect at once."""
        _, answer = await self._json("POST", "/v1/admin/units", body={"code": code, **fields})
        return dict(answer)

    async def update_unit(self, code: str, fields: dict[str, str]) -> dict[str, Any]:
        """PATCH /v1/admin/units/{code} (operators): change some of a unit's fields."""
        _, answer = await self._json(
            "PATCH", f"/v1/admin/units/{quote(code, safe='')}", body=fields
        )
        return dict(answer)

    async def set_unit_active(self, code: str, active: bool) -> dict[str, Any]:
        """POST /v1/admin/units/{code}/resume or /suspend (operators)."""
        action = "resume" if active else "suspend"
        _, answer = await self._json("POST", f"/v1/admin/units/{quote(code, safe='')}/{action}")
        return dict(answer)

    async def revoke_token(self, token_id: str) -> int:
        """POST /v1/admin/tokens/{id}/revoke (operators); how many were revoked (0 or 1)."""
        path = f"/v1/admin/tokens/{quote(token_id, safe='')}/revoke"
        _, answer = await self._json("POST", path)
        return int(answer["revoked"])

    async def receipts(self, key: str, recipient: str | None = None) -> list[dict[str, Any]]:
        """GET /v1/ledger/receipts: the document's offline-verifiable receipts."""
        params = {"document": key} | ({"recipient": recipient} if recipient else {})
        _, answer = await self._json("GET", "/v1/ledger/receipts", params=params)
        return list(answer["receipts"])


def _api_error(status: int, reason: str | None, headers: dict[str, str], body: bytes) -> ApiError:
    kind = headers.get("content-type", "").split(";")[0].strip()
    if kind in ("application/problem+json", "application/json"):
        try:
            problem = json.loads(body)
        except ValueError:
            problem = None
        if isinstance(problem, dict) and isinstance(problem.get("code"), str):
            detail = str(problem.get("detail") or problem.get("title") or "")
            return ApiError(status, problem["code"], detail, problem)
    text = body.decode("utf-8", "replace").strip()
    detail = text.splitlines()[0][:200] if text else (reason or "")
    return ApiError(status, _snake(reason, status), detail, {})
