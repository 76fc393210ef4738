"""Reading a schema-valid edXML tree into the model, with the checks the schema cannot express.

Under ``strict`` every deviation raises PackageRejected; under ``compat`` the deviations that
real systems produce are collected as named warnings (``Findings``) and nothing is repaired:
a header element that is missing or empty is read as None (or the field's default), the first
of repeated ones is read, and only a package without a sender, a recipient or a DocumentId
(for a status also a StatusCode) is refused, since it cannot be routed.
This runs for every package, so it reads each element's children in one pass and works out
an error's location only when there is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

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
    PackageWarning,
    Profile,
    Receiver,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusInfo,
    TraceHeader,
)
from gateway.envelope.names import tag
from gateway.envelope.schema import where
from gateway.errors import CodeName, PackageRejected

_T = TypeVar("_T")
Texts = dict[Any, "str | None"]  # Clark tag -> text of an element's children

# Clark-notation names of the elements read here.
CONTENT = tag("Content")
DUE_DATE = tag("DueDate")
SIGNER_INFO = tag("SignerInfo")
SUBJECT = tag("Subject")
ATTACHMENT = tag("Attachment")
ATTACHMENT_NAME = tag("AttachmentName")
BUSSINESS = tag("Bussiness")
BUSSINESS_DOC_REASON = tag("BussinessDocReason")
BUSSINESS_DOC_TYPE = tag("BussinessDocType")
CODE = tag("Code")
CODE_NOTATION = tag("CodeNotation")
CODE_NUMBER = tag("CodeNumber")
COMPETENCE = tag("Competence")
CONTENT_ID = tag("ContentId")
CONTENT_TRANSFER_ENCODED = tag("ContentTransferEncoded")
CONTENT_TYPE = tag("ContentType")
DEPARTMENT = tag("Department")
DESCRIPTION = tag("Description")
DOCUMENT_ID = tag("DocumentId")
DOCUMENT_TYPE = tag("DocumentType")
EMAIL = tag("Email")
FAX = tag("Fax")
FROM = tag("From")
FULL_NAME = tag("FullName")
MOBILE = tag("Mobile")
ORGANIZATION_IN_CHARGE = tag("OrganizationInCharge")
ORGAN_ADD = tag("OrganAdd")
ORGAN_ID = tag("OrganId")
ORGAN_NAME = tag("OrganName")
OTHER_INFO = tag("OtherInfo")
PAPER = tag("Paper")
PLACE = tag("Place")
POSITION = tag("Position")
PRIORITY = tag("Priority")
PROMULGATION_DATE = tag("PromulgationDate")
PROMULGATION_INFO = tag("PromulgationInfo")
RECEIVER_TYPE = tag("ReceiverType")
RESPONSE_FOR = tag("ResponseFor")
STAFF = tag("Staff")
STAFF_INFO = tag("StaffInfo")
STATUS_CODE = tag("StatusCode")
STEERING_TYPE = tag("SteeringType")
TELEPHONE = tag("Telephone")
TIMESTAMP = tag("Timestamp")
TO = tag("To")
TO_PLACES = tag("ToPlaces")
TRACE_HEADER = tag("TraceHeader")
TYPE = tag("Type")
TYPE_DETAIL = tag("TypeDetail")
TYPE_NAME = tag("TypeName")
WEBSITE = tag("Website")

# MessageHeader children the schema cannot count: it admits them in any order (a repeated
# choice), and XSD 1.0 counts only by identity constraints, whose fields must be simple values.
# (minimum, maximum or None for unbounded); the others it counts itself.
MESSAGE_HEADER_CARDINALITY: dict[str, tuple[int, int | None]] = {
    "To": (1, None),
    "SignerInfo": (0, 1),
    "OtherInfo": (0, 1),
    "ToPlaces": (0, 1),
}
_CARDINALITY = [
    (tag(local), local, low, high) for local, (low, high) in MESSAGE_HEADER_CARDINALITY.items()
]


class Findings:
    """Deviations of one package: raised at once in strict, kept as warnings in compat.

    ``checked``: the package has passed every check already, so the reading skips the checks
    that only look for deviations and records none."""

    def __init__(self, profile: Profile, *, checked: bool = False) -> None:
        self.profile = profile
        self.checked = checked
        # compat reads what is there, a header element may be missing or empty (a warning of
        # gateway.envelope.deviations says so); strict never gets that far with one
        self.tolerant = profile is Profile.COMPAT
        self.warnings: list[PackageWarning] = []

    def deviation(
        self, strict_code: CodeName, warning_code: str, message: str, at: etree._Element
    ) -> None:
        if self.checked:
            return
        if self.profile is Profile.STRICT:
            raise PackageRejected(strict_code, message, where=where(at))
        self.warnings.append(PackageWarning(warning_code, f"{message} ({where(at)})"))


def _clean(value: str | None) -> str | None:
    """A text without the XML whitespace around it (as normalize-space and the schema's tokens
    trim; a no-break space is content), None when nothing is left."""
    if value is None:
        return None
    value = value.strip(names.XML_SPACE)
    return value or None


def _texts(el: etree._Element) -> Texts:
    """The text of each child by tag, the first of repeated ones (compat reads the first)."""
    return {child.tag: child.text for child in reversed(el)}


def _int(value: str | None, at: etree._Element) -> int | None:
    """A whole number the schema has checked (else schema_invalid at ``at``: a safety net)."""
    value = _clean(value)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise PackageRejected(
            "schema_invalid", f"{value!r} is not a whole number", where=where(at)
        ) from None


def _real(parse: Callable[[str], _T], el: etree._Element) -> _T:
    """The date or timestamp ``el`` holds: schema_invalid when it is not even in the format,
    date_invalid when it names no real date."""
    text = (el.text or "").strip(names.XML_SPACE)
    try:
        return parse(text)
    except names.FormatError as e:
        raise PackageRejected("schema_invalid", str(e), where=where(el)) from e
    except ValueError as e:
        raise PackageRejected(
            "date_invalid", f"{text!r} is not a real date", where=where(el)
        ) from e


def _real_or_none(
    parse: Callable[[str], _T], el: etree._Element | None, findings: Findings
) -> _T | None:
    """``_real`` of an element the schema requires; None when compat finds it missing or
    empty (a warning already says so)."""
    if el is None or (findings.tolerant and not (el.text or "").strip(names.XML_SPACE)):
        return None
    return _real(parse, el)


def _refuse(code: CodeName, message: str, at: etree._Element) -> PackageRejected:
    """A package that cannot be routed or keyed: refused in both profiles."""
    return PackageRejected(code, message, where=where(at))


def _first(el: etree._Element, clark: str) -> etree._Element | None:
    """The first child with that tag (faster than find(), which parses a path)."""
    return next(el.iterchildren(clark), None)


def _first_text(el: etree._Element, clark: str) -> str | None:
    child = _first(el, clark)
    return None if child is None else child.text


def _group(parent: etree._Element) -> dict[Any, list[etree._Element]]:
    """Children of ``parent`` by Clark tag, in document order."""
    groups: dict[Any, list[etree._Element]] = {}
    for child in parent:
        groups.setdefault(child.tag, []).append(child)
    return groups


def _check_cardinality(
    header: etree._Element, groups: dict[Any, list[etree._Element]], findings: Findings
) -> None:
    for clark, local, low, high in _CARDINALITY:
        found = groups.get(clark, ())
        if low and not found:
            code: CodeName = "recipient_missing" if clark == TO else "schema_invalid"
            raise PackageRejected(code, f"MessageHeader has no {local}", where=where(header))
        if high is not None and len(found) > high:
            findings.deviation(
                "schema_invalid",
                "element_repeated",
                f"MessageHeader has {len(found)} {local} elements; at most {high} allowed",
                found[high],
            )


def _organ_id(value: str | None, el: etree._Element, findings: Findings, what: str) -> str:
    organ_id = _clean(value) or ""
    if findings.tolerant and not organ_id:
        return organ_id  # missing or empty: a warning says so, or the reader refuses
    if not findings.checked and names.ORGAN_ID.fullmatch(organ_id) is None:
        findings.deviation(
            "organ_id_invalid",
            "organ_id_nonstandard",
            f"{what} OrganId {organ_id!r} is not in the national format NNN.NN.NN.Lnn",
            el,
        )
    return organ_id


def _organization(el: etree._Element, findings: Findings, role: str) -> Organization:
    texts = _texts(el)
    organ_id = _organ_id(texts.get(ORGAN_ID), el, findings, role)
    name = _clean(texts.get(ORGAN_NAME))
    if name is None:  # only in compat: the strict schema requires OrganName
        findings.deviation(
            "schema_invalid", "organ_name_missing", f"{organ_id} has no OrganName", el
        )
    return Organization(
        organ_id=organ_id,
        name=name,
        in_charge=_clean(texts.get(ORGANIZATION_IN_CHARGE)),
        address=_clean(texts.get(ORGAN_ADD)),
        email=_clean(texts.get(EMAIL)),
        telephone=_clean(texts.get(TELEPHONE)),
        fax=_clean(texts.get(FAX)),
        website=_clean(texts.get(WEBSITE)),
    )


def _check_document_id(
    document_id: str,
    organ_id: str,
    promulgation_date: date,
    code: str,
    at: etree._Element,
    findings: Findings,
) -> None:
    """DocumentId must read <OrganId>,<yyyy/MM/dd>,<number>/<notation> and agree with the rest.

    Compared with whitespace collapsed, as the schema compares tokens (and as the check of
    ``parse.FAST_CHECKS`` does)."""
    document_id, code = names.collapse(document_id), names.collapse(code)
    m = names.DOCUMENT_ID.fullmatch(document_id)
    if m is None:
        problem = f"DocumentId {document_id!r} is not <OrganId>,<yyyy/MM/dd>,<number>/<notation>"
    elif m["organ_id"] != organ_id:
        problem = f"DocumentId {document_id!r} is not issued by {organ_id}"
    elif m["date"] != names.format_date(promulgation_date):
        problem = f"DocumentId {document_id!r} does not carry the PromulgationDate"
    elif f"{m['number']}/{m['notation']}" != code:
        problem = f"DocumentId {document_id!r} does not carry the Code {code}"
    else:
        return
    findings.deviation("document_id_invalid", "document_id_nonstandard", problem, at)


def _response_for(el: etree._Element, findings: Findings) -> ResponseFor:
    texts = _texts(el)
    return ResponseFor(
        organ_id=_organ_id(texts.get(ORGAN_ID), el, findings, "ResponseFor"),
        code=_clean(texts.get(CODE)) or "",
        promulgation_date=_real_or_none(names.parse_date, _first(el, PROMULGATION_DATE), findings),
        document_id=_clean(texts.get(DOCUMENT_ID)) or "",
    )


def _traces(trace_list: etree._Element | None, findings: Findings) -> tuple[TraceHeader, ...]:
    if trace_list is None:
        return ()
    traces = []
    for el in trace_list.iterchildren(TRACE_HEADER):
        texts = _texts(el)
        organ_id = _clean(texts.get(ORGAN_ID))
        if organ_id is None or organ_id == "null":
            # The strict schema requires OrganId; "null" is what some systems write instead.
            findings.deviation(
                "organ_id_invalid", "trace_organ_missing", "TraceHeader has no OrganId", el
            )
            organ_id = None
        else:
            _organ_id(organ_id, el, findings, "TraceHeader")
        timestamp = _real_or_none(names.parse_timestamp, _first(el, TIMESTAMP), findings)
        traces.append(TraceHeader(organ_id=organ_id, timestamp=timestamp))
    return tuple(traces)


def _staff(el: etree._Element | None) -> StaffInfo | None:
    if el is None:
        return None
    texts = _texts(el)
    return StaffInfo(
        department=_clean(texts.get(DEPARTMENT)),
        staff=_clean(texts.get(STAFF)),
        mobile=_clean(texts.get(MOBILE)),
        email=_clean(texts.get(EMAIL)),
    )


def _document_type(el: etree._Element) -> DocumentType:
    texts = _texts(el)
    return DocumentType(
        _int(texts.get(TYPE), el) or 0,
        _int(texts.get(TYPE_DETAIL), el),
        _clean(texts.get(TYPE_NAME)),
    )


def _business_type(value: int, at: etree._Element) -> BusinessType:
    if 0 <= value <= max(BusinessType):
        return BusinessType(value)
    raise PackageRejected("schema_invalid", f"BussinessDocType {value} is not 0-3", where=where(at))


def _business(trace_list: etree._Element | None) -> Business | None:
    el = None if trace_list is None else _first(trace_list, BUSSINESS)
    if el is None:
        return None
    texts = _texts(el)
    receivers = tuple(
        Receiver(
            organ_id=_clean(_first_text(r, ORGAN_ID)) or "",
            added=_clean(_first_text(r, RECEIVER_TYPE)) == "1",
        )
        for r in el.iterfind(
            f"{tag('BussinessDocumentInfo')}/{tag('ReceiverList')}/{tag('Receiver')}"
        )
    )
    return Business(
        doc_type=_business_type(_int(texts.get(BUSSINESS_DOC_TYPE), el) or 0, el),
        reason=_clean(texts.get(BUSSINESS_DOC_REASON)),
        document_id=_clean(texts.get(DOCUMENT_ID)),
        paper=_int(texts.get(PAPER), el),
        staff=_staff(_first(el, STAFF_INFO)),
        receivers=receivers,
    )


def _decode(body: etree._Element, content_id: str) -> bytes:
    try:
        return names.decode_base64(body.text or "")
    except ValueError as e:
        raise PackageRejected(
            "attachment_bad_encoding",
            f"ContentTransferEncoded of {content_id} is not valid base64: {e}",
            where=where(body),
        ) from e


def _attachment(att: etree._Element, content: bytes | None) -> Attachment:
    texts: Texts = {}
    body: etree._Element | None = None
    for child in att:  # one pass, and the (large) base64 text made a string only once
        tag = child.tag
        if tag == CONTENT_TRANSFER_ENCODED:
            body = child
        else:
            texts[tag] = child.text
    assert body is not None  # required by the schema
    content_id = _clean(texts.get(CONTENT_ID)) or ""
    return Attachment(
        content_id,
        _clean(texts.get(ATTACHMENT_NAME)) or "",
        _clean(texts.get(CONTENT_TYPE)) or "",
        _decode(body, content_id) if content is None else content,
        _clean(texts.get(DESCRIPTION)),
    )


def _attachment_elements(root: etree._Element) -> list[etree._Element]:
    for encoded in root.iterchildren(names.ATTACHMENTS):
        return list(encoded.iterchildren(ATTACHMENT))
    return []


def decode_attachments(root: etree._Element) -> list[bytes]:
    """The content of each attachment, in order (attachment_bad_encoding when one is not
    base64): decoding is the check, and the model keeps what it decoded."""
    return [
        _decode(body, "an attachment")
        for att in _attachment_elements(root)
        for body in att.iterchildren(CONTENT_TRANSFER_ENCODED)
    ]


def read_attachments(
    root: etree._Element, contents: Sequence[bytes] | None = None
) -> tuple[Attachment, ...]:
    """The attachments, decoded unless ``contents`` holds their content already (in order)."""
    elements = _attachment_elements(root)
    if contents is None:
        return tuple([_attachment(att, None) for att in elements])
    return tuple([_attachment(att, c) for att, c in zip(elements, contents, strict=True)])


def _one(groups: dict[Any, list[etree._Element]], clark: str) -> etree._Element | None:
    found = groups.get(clark)
    return found[0] if found else None


def _sender(
    found: list[etree._Element] | None, at: etree._Element, findings: Findings, role: str
) -> Organization:
    """The first From, which must name an OrganId: without one the package cannot be routed."""
    sender = None if not found else _organization(found[0], findings, role)
    if sender is None or not sender.organ_id:
        raise _refuse("sender_missing", f"{role} names no OrganId: no sender", at)
    return sender


def _recipients(
    found: list[etree._Element], at: etree._Element, findings: Findings
) -> tuple[Organization, ...]:
    """Each To with an OrganId, once (compat may find one empty or named twice, and has said
    so); without any the package cannot be routed."""
    recipients: dict[str, Organization] = {}
    for el in found:
        org = _organization(el, findings, "To")
        if org.organ_id:
            recipients.setdefault(org.organ_id, org)
    if not recipients:
        raise _refuse("recipient_missing", "MessageHeader names no recipient OrganId", at)
    return tuple(recipients.values())


def read_document(
    root: etree._Element,
    header: etree._Element,
    findings: Findings,
    contents: Sequence[bytes] | None = None,
    **reading: Any,
) -> Package:
    """The model of a document package; ``contents``: the attachments' content, when already
    decoded; ``reading`` are Package's raw/sha256 fields. In compat, a header element that is
    missing is None (or the field's default) in the model; the routing ones are refused."""
    message = _first(header, names.MESSAGE_HEADER)
    if message is None:  # compat only: the strict schema requires it
        raise _refuse("sender_missing", "edXMLHeader has no MessageHeader: no sender", header)
    groups = _group(message)
    if not findings.checked:
        _check_cardinality(message, groups, findings)
    sender = _sender(groups.get(FROM), message, findings, "From")
    recipients = _recipients(groups.get(TO, []), message, findings)
    document_id_el = _one(groups, DOCUMENT_ID)
    document_id = None if document_id_el is None else _clean(document_id_el.text)
    if document_id is None:
        raise _refuse("document_id_missing", "MessageHeader names no DocumentId", message)

    code_el = _one(groups, CODE)
    code_texts = {} if code_el is None else _texts(code_el)
    code = (
        None
        if code_el is None
        else Code(
            _clean(code_texts.get(CODE_NUMBER)) or "", _clean(code_texts.get(CODE_NOTATION)) or ""
        )
    )
    info = _one(groups, PROMULGATION_INFO)
    info_texts = {} if info is None else _texts(info)
    promulgation_date = (
        None
        if info is None
        else _real_or_none(names.parse_date, _first(info, PROMULGATION_DATE), findings)
    )
    if not findings.checked and promulgation_date is not None and code is not None:
        assert document_id_el is not None
        _check_document_id(
            document_id, sender.organ_id, promulgation_date, str(code), document_id_el, findings
        )

    doc_type = _one(groups, DOCUMENT_TYPE)
    signer_el = _one(groups, SIGNER_INFO)
    signer = None if signer_el is None else _texts(signer_el)
    other = _one(groups, OTHER_INFO)
    places = _one(groups, TO_PLACES)
    due = _one(groups, DUE_DATE)
    steering = _one(groups, STEERING_TYPE)
    content = _one(groups, CONTENT)
    subject = _one(groups, SUBJECT)
    trace_list = _first(header, names.TRACE_LIST)
    traces = _traces(trace_list, findings)
    response_for = tuple(_response_for(el, findings) for el in groups.get(RESPONSE_FOR, ()))
    return Package(
        kind=Kind.DOCUMENT,
        sender=sender,
        recipients=recipients,
        document_id=document_id,
        code=code,
        subject=None if subject is None else _clean(subject.text),
        content=None if content is None else _clean(content.text),
        promulgation_place=_clean(info_texts.get(PLACE)),
        promulgation_date=promulgation_date,
        document_type=None if doc_type is None else _document_type(doc_type),
        signer=None
        if signer is None
        else SignerInfo(
            competence=_clean(signer.get(COMPETENCE)),
            position=_clean(signer.get(POSITION)),
            full_name=_clean(signer.get(FULL_NAME)),
        ),
        due_date=_real_or_none(names.parse_date, due, findings),
        priority=(None if other is None else _int(_first_text(other, PRIORITY), other)) or 0,
        steering_type=None if steering is None else _int(steering.text, steering),
        to_places=()
        if places is None
        else tuple(_clean(p.text) or "" for p in places.iterchildren(PLACE)),
        response_for=response_for,
        business=_business(trace_list),
        traces=traces,
        attachments=read_attachments(root, contents),
        warnings=tuple(findings.warnings),
        **reading,
    )


def read_status(header: etree._Element, findings: Findings, **reading: Any) -> Package:
    """The model of a status packet; ``reading`` are Package's raw/sha256 fields. Its
    StatusCode decides where it goes (gateway.workflow), so without one it is refused as the
    sender, recipient and DocumentId are."""
    status = _first(header, names.STATUS)
    assert status is not None  # the caller decided the kind from it
    groups = _group(status)
    status_code_el = _one(groups, STATUS_CODE)
    status_code = "" if status_code_el is None else _clean(status_code_el.text) or ""
    if status_code not in STATUS_CODES:
        raise _refuse(
            "status_code_unknown",
            f"StatusCode {status_code!r} is not one of {', '.join(STATUS_CODES)}",
            status if status_code_el is None else status_code_el,
        )
    responder = _sender(groups.get(FROM), status, findings, "Status/From")
    response_el = _one(groups, RESPONSE_FOR)
    if response_el is None:
        raise _refuse("recipient_missing", "Status has no ResponseFor: it answers nobody", status)
    response_for = _response_for(response_el, findings)
    if not response_for.organ_id:
        raise _refuse("recipient_missing", "ResponseFor names no OrganId", response_el)
    if not response_for.document_id:
        raise _refuse("document_id_missing", "ResponseFor names no DocumentId", response_el)
    if response_for.promulgation_date is not None and response_for.code:
        _check_document_id(
            response_for.document_id,
            response_for.organ_id,
            response_for.promulgation_date,
            response_for.code,
            response_el,
            findings,
        )
    description = _one(groups, DESCRIPTION)
    traces = _traces(_first(header, names.TRACE_LIST), findings)
    return Package(
        kind=Kind.STATUS,
        sender=responder,
        recipients=(Organization(organ_id=response_for.organ_id),),
        document_id=response_for.document_id,
        traces=traces,
        status=StatusInfo(
            code=status_code,
            timestamp=_real_or_none(names.parse_timestamp, _one(groups, TIMESTAMP), findings),
            response_for=response_for,
            description=None if description is None else _clean(description.text),
            staff=_staff(_one(groups, STAFF_INFO)),
        ),
        warnings=tuple(findings.warnings),
        **reading,
    )
