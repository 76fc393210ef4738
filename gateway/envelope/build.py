"""``build_package``: write an edXML package or status packet from the model.

The output is unsigned (``gateway.trust.sign_package`` adds the signature as the last child of
edXMLHeader) and uses the element order of existing systems, so that any of them can read it.
"""

from __future__ import annotations

import base64
from datetime import date, datetime

from lxml import etree

from gateway.envelope import names
from gateway.envelope.model import (
    Business,
    Kind,
    Organization,
    Package,
    ResponseFor,
    StaffInfo,
    TraceHeader,
)
from gateway.envelope.names import tag

_NSMAP = {"edXML": names.NS}


def _add(parent: etree._Element, local: str, text: object | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag(local))
    if text is not None:
        el.text = str(text)
    return el


def _add_optional(parent: etree._Element, local: str, text: object | None) -> None:
    if text is not None:
        _add(parent, local, text)


def _date(value: date | None) -> str | None:
    """A date as written, None for one a compat reading found missing (written as missing)."""
    return None if value is None else names.format_date(value)


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else names.format_timestamp(value)


def _organization(parent: etree._Element, local: str, org: Organization) -> None:
    el = _add(parent, local)
    _add(el, "OrganId", org.organ_id)
    _add_optional(el, "OrganizationInCharge", org.in_charge)
    _add_optional(el, "OrganName", org.name)
    _add_optional(el, "OrganAdd", org.address)
    _add_optional(el, "Email", org.email)
    _add_optional(el, "Telephone", org.telephone)
    _add_optional(el, "Fax", org.fax)
    _add_optional(el, "Website", org.website)


def _response_for(parent: etree._Element, r: ResponseFor) -> None:
    el = _add(parent, "ResponseFor")
    _add(el, "OrganId", r.organ_id)
    _add(el, "Code", r.code)
    _add_optional(el, "PromulgationDate", _date(r.promulgation_date))
    _add(el, "DocumentId", r.document_id)


def _staff(parent: etree._Element, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    el = _add(parent, "StaffInfo")
    _add_optional(el, "Department", staff.department)
    _add_optional(el, "Staff", staff.staff)
    _add_optional(el, "Mobile", staff.mobile)
    _add_optional(el, "Email", staff.email)


def _business(parent: etree._Element, b: Business) -> None:
    el = _add(parent, "Bussiness")
    _add(el, "BussinessDocType", int(b.doc_type))
    _add_optional(el, "BussinessDocReason", b.reason)
    _add_optional(el, "DocumentId", b.document_id)
    _add_optional(el, "Paper", b.paper)
    _staff(el, b.staff)
    if b.receivers:
        info = _add(el, "BussinessDocumentInfo")
        receivers = _add(info, "ReceiverList")
        for r in b.receivers:
            receiver = _add(receivers, "Receiver")
            _add(receiver, "ReceiverType", 1 if r.added else 0)
            _add(receiver, "OrganId", r.organ_id)


def _trace_list(
    header: etree._Element, business: Business | None, traces: tuple[TraceHeader, ...]
) -> None:
    if business is None and not traces:
        return
    el = _add(header, "TraceHeaderList")
    for t in traces:
        trace = _add(el, "TraceHeader")
        _add_optional(trace, "OrganId", t.organ_id)
        _add_optional(trace, "Timestamp", _timestamp(t.timestamp))
    if business is not None:
        _business(el, business)


def _message_header(header: etree._Element, p: Package) -> None:
    mh = _add(header, "MessageHeader")
    _organization(mh, "From", p.sender)
    for r in p.recipients:
        _organization(mh, "To", r)
    _add(mh, "DocumentId", p.document_id)
    if p.code is not None:
        code = _add(mh, "Code")
        _add(code, "CodeNumber", p.code.number)
        _add(code, "CodeNotation", p.code.notation)
    info = _add(mh, "PromulgationInfo")
    _add_optional(info, "Place", p.promulgation_place)
    if p.promulgation_date is not None:
        _add(info, "PromulgationDate", names.format_date(p.promulgation_date))
    if p.document_type is not None:
        dt = _add(mh, "DocumentType")
        _add(dt, "Type", p.document_type.type)
        _add_optional(dt, "TypeDetail", p.document_type.detail)
        _add_optional(dt, "TypeName", p.document_type.name)
    _add(mh, "Subject", p.subject)
    _add_optional(mh, "Content", p.content)
    if p.signer is not None:
        si = _add(mh, "SignerInfo")
        _add_optional(si, "Competence", p.signer.competence)
        _add_optional(si, "Position", p.signer.position)
        _add_optional(si, "FullName", p.signer.full_name)
    if p.due_date is not None:
        _add(mh, "DueDate", names.format_date(p.due_date))
    other = _add(mh, "OtherInfo")
    _add(other, "Priority", p.priority)
    _add_optional(mh, "SteeringType", p.steering_type)
    if p.to_places:
        places = _add(mh, "ToPlaces")
        for place in p.to_places:
            _add(places, "Place", place)
    for answered in p.response_for:
        _response_for(mh, answered)


def _status(header: etree._Element, p: Package) -> None:
    if p.status is None:
        raise ValueError("a status packet needs its StatusInfo")
    st = _add(header, "Status")
    _response_for(st, p.status.response_for)
    _organization(st, "From", p.sender)
    _add(st, "StatusCode", p.status.code)
    _add_optional(st, "Description", p.status.description)
    _add_optional(st, "Timestamp", _timestamp(p.status.timestamp))
    _staff(st, p.status.staff)


def build_tree(p: Package) -> etree._Element:
    root = etree.Element(names.ROOT, nsmap=_NSMAP)
    envelope = _add(root, "edXMLEnvelope")
    header = _add(envelope, "edXMLHeader")
    if p.kind is Kind.STATUS:
        _status(header, p)
        _trace_list(header, None, p.traces)
        return root
    _message_header(header, p)
    _trace_list(header, p.business, p.traces)
    manifest = _add(_add(envelope, "edXMLBody"), "edXMLManifest")
    manifest.set("version", "1.0")
    for a in p.attachments:
        ref = _add(manifest, "Reference")
        _add(ref, "ContentId", a.content_id)
        _add(ref, "ContentType", a.content_type)
        _add_optional(ref, "Description", a.description)
        _add(ref, "AttachmentName", a.name)
    if p.attachments:
        encoded = _add(root, "AttachmentEncoded")
        for a in p.attachments:
            att = _add(encoded, "Attachment")
            _add(att, "ContentId", a.content_id)
            _add(att, "AttachmentName", a.name)
            _add_optional(att, "Description", a.description)
            _add(att, "ContentType", a.content_type)
            _add(att, "ContentTransferEncoded", base64.b64encode(a.data).decode("ascii"))
    return root


def build_package(p: Package) -> bytes:
    """The package as UTF-8 edXML bytes with an XML declaration, unsigned."""
    return etree.tostring(build_tree(p), xml_declaration=True, encoding="UTF-8", pretty_print=True)
