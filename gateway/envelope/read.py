"""Reading a schema-valid edXML tree into the model, with the checks the schema cannot express.

Under ``strict`` every deviation raises PackageRejected; under ``compat`` the deviations that
real systems produce are collected as named warnings (``Findings``) and nothing is repaired.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TypeVar

from lxml import etree

from gateway.envelope import names
from gateway.envelope.model import (
    STATUS_CODES,
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentType,
    Kind,
    Organization,
    Package,
    Profile,
    Receiver,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusInfo,
    TraceHeader,
    Warning,
)
from gateway.envelope.names import tag
from gateway.envelope.schema import where
from gateway.errors import PackageRejected

# MessageHeader children: (minimum, maximum or None for unbounded). Their order is free.
MESSAGE_HEADER_CARDINALITY: dict[str, tuple[int, int | None]] = {
    "From": (1, 1),
    "To": (1, None),
    "DocumentId": (1, 1),
    "Code": (1, 1),
    "PromulgationInfo": (1, 1),
    "DocumentType": (1, 1),
    "Subject": (1, 1),
    "Content": (0, 1),
    "SignerInfo": (0, 1),
    "DueDate": (0, 1),
    "OtherInfo": (0, 1),
    "SteeringType": (0, 1),
    "ToPlaces": (0, 1),
    "ResponseFor": (0, None),
}

_D = TypeVar("_D", bound=date)

_WEAK_ALGORITHMS = ("sha1", "md5", "ripemd160")
_B64_WHITESPACE = b" \t\r\n"


class Findings:
    """Deviations of one package: raised at once in strict, kept as warnings in compat."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.warnings: list[Warning] = []

    def deviation(self, strict_code: str, warning_code: str, message: str, at: str) -> None:
        if self.profile is Profile.STRICT:
            raise PackageRejected(strict_code, message, where=at)
        self.warnings.append(Warning(warning_code, f"{message} ({at})"))


def _text(el: etree._Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    value = el.text.strip()
    return value or None


def _child_text(parent: etree._Element | None, local: str) -> str | None:
    return None if parent is None else _text(parent.find(tag(local)))


def _child_int(parent: etree._Element | None, local: str) -> int | None:
    value = _child_text(parent, local)
    return None if value is None else int(value)


def _real(parse: Callable[[str], _D], el: etree._Element) -> _D:
    value = _text(el) or ""
    try:
        return parse(value)
    except ValueError as e:
        raise PackageRejected(
            "date_invalid", f"{value!r} is not a real date", where=where(el)
        ) from e


def _date(parent: etree._Element, local: str) -> date | None:
    el = parent.find(tag(local))
    return None if el is None else _real(names.parse_date, el)


def _timestamp(el: etree._Element) -> datetime:
    return _real(names.parse_timestamp, el)


def _group(parent: etree._Element) -> dict[str, list[etree._Element]]:
    """Element children of ``parent`` by local name, in document order."""
    groups: dict[str, list[etree._Element]] = {}
    for child in parent.iterchildren(tag=etree.Element):
        groups.setdefault(etree.QName(child).localname, []).append(child)
    return groups


def _check_cardinality(header: etree._Element, groups: dict[str, list[etree._Element]]) -> None:
    for local, (low, high) in MESSAGE_HEADER_CARDINALITY.items():
        found = groups.get(local, [])
        if local == "To" and not found:
            raise PackageRejected(
                "recipient_missing", "MessageHeader names no recipient (To)", where=where(header)
            )
        if len(found) < low:
            raise PackageRejected(
                "schema_invalid", f"MessageHeader is missing its {local}", where=where(header)
            )
        if high is not None and len(found) > high:
            raise PackageRejected(
                "schema_invalid",
                f"MessageHeader has {len(found)} {local} elements; at most {high} allowed",
                where=where(found[high]),
            )


def _organization(el: etree._Element, findings: Findings) -> Organization:
    organ_id_el = el.find(tag("OrganId"))
    organ_id = _text(organ_id_el) or ""
    if not names.is_organ_id(organ_id):
        findings.deviation(
            "organ_id_invalid",
            "organ_id_nonstandard",
            f"OrganId {organ_id!r} is not in the national format NNN.NN.NN.Lnn",
            where(organ_id_el if organ_id_el is not None else el),
        )
    name = _child_text(el, "OrganName")
    if name is None:
        # Only reachable in compat: the strict schema requires OrganName.
        findings.deviation(
            "schema_invalid", "organ_name_missing", f"{organ_id} has no OrganName", where(el)
        )
    return Organization(
        organ_id=organ_id,
        name=name,
        in_charge=_child_text(el, "OrganizationInCharge"),
        address=_child_text(el, "OrganAdd"),
        email=_child_text(el, "Email"),
        telephone=_child_text(el, "Telephone"),
        fax=_child_text(el, "Fax"),
        website=_child_text(el, "Website"),
    )


def _recipients(elements: Iterable[etree._Element], findings: Findings) -> tuple[Organization, ...]:
    seen: set[str] = set()
    recipients = []
    for el in elements:
        org = _organization(el, findings)
        if org.organ_id in seen:
            raise PackageRejected(
                "recipient_duplicate",
                f"{org.organ_id} is named twice as a recipient",
                where=where(el),
            )
        seen.add(org.organ_id)
        recipients.append(org)
    return tuple(recipients)


def _check_document_id(
    document_id: str,
    organ_id: str,
    promulgation_date: date | None,
    code: str | None,
    at: str,
    findings: Findings,
) -> None:
    """DocumentId must read <OrganId>,<yyyy/MM/dd>,<number>/<notation> and agree with the rest."""
    m = names.DOCUMENT_ID.fullmatch(document_id)
    problem = None
    if m is None:
        problem = f"DocumentId {document_id!r} is not <OrganId>,<yyyy/MM/dd>,<number>/<notation>"
    elif m["organ_id"] != organ_id:
        problem = f"DocumentId {document_id!r} is not issued by {organ_id}"
    elif promulgation_date is not None and m["date"] != names.format_date(promulgation_date):
        problem = f"DocumentId {document_id!r} does not carry the PromulgationDate"
    elif code is not None and f"{m['number']}/{m['notation']}" != code:
        problem = f"DocumentId {document_id!r} does not carry the Code {code}"
    if problem is None:
        return
    findings.deviation("document_id_invalid", "document_id_nonstandard", problem, at)


def _response_for(el: etree._Element, findings: Findings) -> ResponseFor:
    organ_id_el = el.find(tag("OrganId"))
    organ_id = _text(organ_id_el) or ""
    if not names.is_organ_id(organ_id):
        findings.deviation(
            "organ_id_invalid",
            "organ_id_nonstandard",
            f"ResponseFor OrganId {organ_id!r} is not in the national format",
            where(organ_id_el if organ_id_el is not None else el),
        )
    promulgation_date = _date(el, "PromulgationDate")
    assert promulgation_date is not None  # required by the schema
    return ResponseFor(
        organ_id=organ_id,
        code=_child_text(el, "Code") or "",
        promulgation_date=promulgation_date,
        document_id=_child_text(el, "DocumentId") or "",
    )


def _traces(trace_list: etree._Element | None, findings: Findings) -> tuple[TraceHeader, ...]:
    if trace_list is None:
        return ()
    traces = []
    for el in trace_list.iterchildren(tag("TraceHeader")):
        organ_id = _child_text(el, "OrganId")
        if organ_id is None or organ_id == "null":
            # The strict schema requires OrganId; "null" is what some systems write instead.
            findings.deviation(
                "organ_id_invalid", "trace_organ_missing", "TraceHeader has no OrganId", where(el)
            )
            organ_id = None
        elif not names.is_organ_id(organ_id):
            findings.deviation(
                "organ_id_invalid",
                "organ_id_nonstandard",
                f"TraceHeader OrganId {organ_id!r} is not in the national format",
                where(el),
            )
        stamp = el.find(tag("Timestamp"))
        assert stamp is not None  # required by the schema
        traces.append(TraceHeader(organ_id=organ_id, timestamp=_timestamp(stamp)))
    return tuple(traces)


def _staff(el: etree._Element | None) -> StaffInfo | None:
    if el is None:
        return None
    return StaffInfo(
        department=_child_text(el, "Department"),
        staff=_child_text(el, "Staff"),
        mobile=_child_text(el, "Mobile"),
        email=_child_text(el, "Email"),
    )


def _business(trace_list: etree._Element | None) -> Business | None:
    el = None if trace_list is None else trace_list.find(tag("Bussiness"))
    if el is None:
        return None
    receivers: list[Receiver] = []
    receiver_list = el.find(f"{tag('BussinessDocumentInfo')}/{tag('ReceiverList')}")
    if receiver_list is not None:
        for r in receiver_list.iterchildren(tag("Receiver")):
            receivers.append(
                Receiver(
                    organ_id=_child_text(r, "OrganId") or "",
                    added=_child_text(r, "ReceiverType") == "1",
                )
            )
    return Business(
        doc_type=BusinessType(_child_int(el, "BussinessDocType") or 0),
        reason=_child_text(el, "BussinessDocReason"),
        document_id=_child_text(el, "DocumentId"),
        paper=_child_int(el, "Paper"),
        staff=_staff(el.find(tag("StaffInfo"))),
        receivers=tuple(receivers),
    )


def _decode(el: etree._Element) -> bytes:
    text = el.text or ""
    try:
        encoded = text.encode("ascii").translate(None, _B64_WHITESPACE)
        return binascii.a2b_base64(encoded, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as e:
        raise PackageRejected(
            "attachment_bad_encoding",
            f"ContentTransferEncoded is not valid base64 ({e})",
            where=where(el),
        ) from e


def _attachments(root: etree._Element, manifest: etree._Element | None) -> tuple[Attachment, ...]:
    """Pair manifest References with Attachments one to one; decode each attachment once."""
    referenced: dict[str, etree._Element] = {}
    if manifest is not None:
        for ref in manifest.iterchildren(tag("Reference")):
            referenced[_child_text(ref, "ContentId") or ""] = ref
    encoded = root.find(names.ATTACHMENTS)
    by_id: dict[str, etree._Element] = {}
    if encoded is not None:
        for att in encoded.iterchildren(tag("Attachment")):
            content_id = _child_text(att, "ContentId") or ""
            if content_id not in referenced:
                raise PackageRejected(
                    "attachment_unreferenced",
                    f"attachment {content_id} is not listed in the manifest",
                    where=where(att),
                )
            by_id[content_id] = att
    for content_id, ref in referenced.items():
        if content_id not in by_id:
            raise PackageRejected(
                "attachment_missing",
                f"manifest reference {content_id} has no attachment",
                where=where(ref),
            )
    attachments = []
    for content_id, att in by_id.items():
        body = att.find(tag("ContentTransferEncoded"))
        assert body is not None  # required by the schema
        attachments.append(
            Attachment(
                content_id=content_id,
                name=_child_text(att, "AttachmentName") or "",
                content_type=_child_text(att, "ContentType") or "",
                description=_child_text(att, "Description"),
                data=_decode(body),
            )
        )
    return tuple(attachments)


def signature_warnings(header: etree._Element, findings: Findings) -> None:
    """Compat only: say what is wrong with the signature without verifying it."""
    signatures = [
        c for c in header.iterchildren(tag=etree.Element) if etree.QName(c).localname == "Signature"
    ]
    if not signatures:
        findings.warnings.append(Warning("signature_absent", "the package is not signed"))
        return
    sig = signatures[-1]
    if sig.tag != names.DS_SIGNATURE:
        ns = etree.QName(sig).namespace or "no namespace"
        findings.warnings.append(
            Warning(
                "signature_not_xmldsig", f"Signature is in {ns}, not W3C XMLDSig ({where(sig)})"
            )
        )
        return
    weak = weak_algorithms(sig)
    if weak:
        findings.warnings.append(
            Warning("signature_weak_algorithm", f"the signature uses {', '.join(weak)}")
        )


def weak_algorithms(signature: etree._Element) -> list[str]:
    """Algorithm URIs in a ds:Signature's SignedInfo that rest on SHA-1 or weaker."""
    found = []
    for el in signature.iter(f"{{{names.DS_NS}}}SignatureMethod", f"{{{names.DS_NS}}}DigestMethod"):
        uri = el.get("Algorithm", "")
        fragment = uri.rsplit("#", 1)[-1].rsplit("/", 1)[-1].lower()
        if any(fragment.endswith(w) or f"-{w}" in fragment for w in _WEAK_ALGORITHMS):
            found.append(uri)
    return found


def read_document(root: etree._Element, header: etree._Element, findings: Findings) -> Package:
    message = header.find(names.MESSAGE_HEADER)
    assert message is not None  # the caller decided the kind from it
    groups = _group(message)
    _check_cardinality(message, groups)
    sender = _organization(groups["From"][0], findings)
    recipients = _recipients(groups["To"], findings)

    code_el = groups["Code"][0]
    code = Code(
        _child_text(code_el, "CodeNumber") or "", _child_text(code_el, "CodeNotation") or ""
    )
    info = groups["PromulgationInfo"][0]
    promulgation_date = _date(info, "PromulgationDate")
    document_id_el = groups["DocumentId"][0]
    document_id = _text(document_id_el) or ""
    _check_document_id(
        document_id, sender.organ_id, promulgation_date, str(code), where(document_id_el), findings
    )

    doc_type_el = groups["DocumentType"][0]
    signer_el = groups.get("SignerInfo", [None])[0]
    other = groups.get("OtherInfo", [None])[0]
    places = groups.get("ToPlaces", [None])[0]
    due = groups.get("DueDate")
    steering = groups.get("SteeringType")
    trace_list = header.find(names.TRACE_LIST)
    return Package(
        kind=Kind.DOCUMENT,
        sender=sender,
        recipients=recipients,
        document_id=document_id,
        code=code,
        subject=_text(groups["Subject"][0]),
        content=_text(groups.get("Content", [None])[0]),
        promulgation_place=_child_text(info, "Place"),
        promulgation_date=promulgation_date,
        document_type=DocumentType(
            type=_child_int(doc_type_el, "Type") or 0,
            detail=_child_int(doc_type_el, "TypeDetail"),
            name=_child_text(doc_type_el, "TypeName"),
        ),
        signer=None
        if signer_el is None
        else SignerInfo(
            competence=_child_text(signer_el, "Competence"),
            position=_child_text(signer_el, "Position"),
            full_name=_child_text(signer_el, "FullName"),
        ),
        due_date=None if not due else _real(names.parse_date, due[0]),
        priority=_child_int(other, "Priority") or 0,
        steering_type=None if not steering else int(_text(steering[0]) or 0),
        to_places=()
        if places is None
        else tuple(_text(p) or "" for p in places.iterchildren(tag("Place"))),
        response_for=tuple(_response_for(el, findings) for el in groups.get("ResponseFor", [])),
        business=_business(trace_list),
        traces=_traces(trace_list, findings),
        attachments=_attachments(
            root, root.find(f"{names.ENVELOPE}/{names.BODY}/{names.MANIFEST}")
        ),
    )


def read_status(header: etree._Element, findings: Findings) -> Package:
    status = header.find(names.STATUS)
    assert status is not None  # the caller decided the kind from it
    status_code_el = status.find(tag("StatusCode"))
    stamp_el = status.find(tag("Timestamp"))
    from_el = status.find(tag("From"))
    response_el = status.find(tag("ResponseFor"))
    assert status_code_el is not None and stamp_el is not None  # required by the schema
    assert from_el is not None and response_el is not None
    status_code = _text(status_code_el) or ""
    if status_code not in STATUS_CODES:
        raise PackageRejected(
            "status_code_unknown",
            f"StatusCode {status_code!r} is not one of {', '.join(STATUS_CODES)}",
            where=where(status_code_el),
        )
    responder = _organization(from_el, findings)
    response_for = _response_for(response_el, findings)
    _check_document_id(
        response_for.document_id,
        response_for.organ_id,
        response_for.promulgation_date,
        response_for.code,
        where(response_el),
        findings,
    )
    trace_list = header.find(names.TRACE_LIST)
    return Package(
        kind=Kind.STATUS,
        sender=responder,
        recipients=(Organization(organ_id=response_for.organ_id),),
        document_id=response_for.document_id,
        traces=_traces(trace_list, findings),
        status=StatusInfo(
            code=status_code,
            timestamp=_timestamp(stamp_el),
            response_for=response_for,
            description=_child_text(status, "Description"),
            staff=_staff(status.find(tag("StaffInfo"))),
        ),
    )
