"""Sample edXML packages for tests: valid models to build, mutate and sign."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import date, datetime

from lxml import etree

from gateway.envelope import (
    Attachment,
    Code,
    DocumentType,
    Kind,
    Organization,
    Package,
    ResponseFor,
    SignerInfo,
    StatusInfo,
    TraceHeader,
    make_document_id,
)

# A structurally complete W3C signature (SHA-256 algorithms, placeholder values). `validate`
# checks placement and algorithms only, so it stands in for a real one where the test is about
# the envelope rules; tests about signatures sign for real.
DUMMY_SIGNATURE = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <ds:SignedInfo>
    <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
    <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>
    <ds:Reference URI="">
      <ds:Transforms>
        <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      </ds:Transforms>
      <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
      <ds:DigestValue>AAAA</ds:DigestValue>
    </ds:Reference>
  </ds:SignedInfo>
  <ds:SignatureValue>AAAA</ds:SignatureValue>
</ds:Signature>"""


def sample_document(**changes: object) -> Package:
    """A valid document package model: one sender, two recipients, one attachment."""
    day = date(2026, 11, 26)
    package = Package(
        kind=Kind.DOCUMENT,
        sender=Organization("000.00.05.H07", "Sở Nội vụ tỉnh", email="snv@example.gov.vn"),
        recipients=(
            Organization("000.00.06.H07", "Sở Tài chính tỉnh"),
            Organization("000.01.20.H07", "Phòng Nội vụ huyện"),
        ),
        document_id=make_document_id("000.00.05.H07", day, "125", "SNV-VP"),
        code=Code("125", "SNV-VP"),
        subject="Về việc báo cáo công tác cải cách hành chính",
        content="Đề nghị các đơn vị báo cáo trước ngày 15/12/2026.",
        promulgation_place="Thành phố",
        promulgation_date=day,
        document_type=DocumentType(1, 0, "Công văn"),
        signer=SignerInfo("KT. Giám đốc", "Phó Giám đốc", "Nguyễn Văn An"),
        priority=1,
        steering_type=0,
        traces=(TraceHeader("000.00.05.H07", datetime(2026, 11, 26, 9, 30, 0)),),
        attachments=(
            Attachment("cid:att-1", "cong-van.pdf", "application/pdf", b"%PDF-1.4 sample"),
        ),
    )
    return dataclasses.replace(package, **changes)  # type: ignore[arg-type]


def sample_status(code: str = "01") -> Package:
    original = sample_document()
    assert original.promulgation_date is not None
    response = ResponseFor(
        organ_id=original.sender.organ_id,
        code=str(original.code),
        promulgation_date=original.promulgation_date,
        document_id=original.document_id,
    )
    return Package(
        kind=Kind.STATUS,
        sender=Organization("000.00.06.H07", "Sở Tài chính tỉnh"),
        recipients=(Organization(original.sender.organ_id),),
        document_id=original.document_id,
        status=StatusInfo(code, datetime(2026, 11, 26, 10, 0, 0), response, "Đã đến"),
    )


def with_dummy_signature(data: bytes) -> bytes:
    """Append DUMMY_SIGNATURE as the last child of edXMLHeader."""
    root = etree.fromstring(data)
    header = root.find("{*}edXMLEnvelope/{*}edXMLHeader")
    assert header is not None
    header.append(etree.fromstring(DUMMY_SIGNATURE))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


NSMAP = {"e": "http://www.mic.gov.vn/TBT/QCVN_102_2016"}


def mutated(change: Callable[[etree._Element], object], package: Package | None = None) -> bytes:
    """A sample package with ``change`` applied to its tree, then a dummy signature added."""
    from gateway.envelope import build_tree

    root = build_tree(package or sample_document())
    change(root)
    return with_dummy_signature(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def first(root: etree._Element, path: str) -> etree._Element:
    """The first element at an XPath with the prefix ``e`` for edXML."""
    found = root.xpath(path, namespaces=NSMAP)
    assert isinstance(found, list) and found, path
    el = found[0]
    assert isinstance(el, etree._Element)
    return el


def set_text(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        first(root, path).text = value

    return change


def duplicate(path: str) -> Callable[[etree._Element], None]:
    """A copy of the first element at ``path`` right after it."""

    def change(root: etree._Element) -> None:
        el = first(root, path)
        el.addnext(copy.deepcopy(el))

    return change


def remove(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = first(root, path)
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)

    return change
