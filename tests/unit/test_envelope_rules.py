"""parse_package: a valid package mutated one rule at a time, each with its error code."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from lxml import etree
from samples import (
    duplicate,
    first,
    mutated,
    remove,
    sample_document,
    sample_status,
    set_text,
    with_dummy_signature,
)

from gateway.envelope import Profile, build_package, parse_package
from gateway.errors import PackageRejected

STRICT = Profile.STRICT
COMPAT = Profile.COMPAT


def rejected(data: bytes, profile: Profile = STRICT) -> PackageRejected:
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, profile)
    return caught.value


def test_sample_document_is_valid_in_both_profiles() -> None:
    data = with_dummy_signature(build_package(sample_document()))
    for profile in Profile:
        package = parse_package(data, profile)
        assert package == sample_document()
        assert package.warnings == ()
        assert package.document_key == "000.00.05.H07|000.00.05.H07,2026/11/26,125/SNV-VP"


def test_sample_status_is_valid() -> None:
    package = parse_package(with_dummy_signature(build_package(sample_status("03"))))
    assert package.kind == "status"
    assert package.status is not None and package.status.code == "03"
    assert [r.organ_id for r in package.recipients] == ["000.00.05.H07"]
    assert package.document_key == sample_document().document_key


def test_model_carries_raw_bytes_digest_and_attachment_facts() -> None:
    data = with_dummy_signature(build_package(sample_document()))
    package = parse_package(data)
    assert package.raw == data
    import hashlib

    assert package.sha256 == hashlib.sha256(data).hexdigest()
    (attachment,) = package.attachments
    assert attachment.size == len(b"%PDF-1.4 sample")
    assert attachment.sha256 == hashlib.sha256(b"%PDF-1.4 sample").hexdigest()
    assert attachment.name == "cong-van.pdf" and attachment.content_type == "application/pdf"


def test_message_header_children_in_another_order_are_accepted() -> None:
    def reverse(root: etree._Element) -> None:
        header = first(root, "//e:MessageHeader")
        children = list(header)
        for child in children:
            header.remove(child)
        for child in reversed(children):
            header.append(child)

    model = sample_document()
    parsed = parse_package(mutated(reverse))
    assert parsed.recipients == tuple(reversed(model.recipients))
    assert dataclasses.replace(parsed, recipients=model.recipients) == model


def test_bussiness_before_trace_headers_is_accepted() -> None:
    from gateway.envelope import Business

    model = sample_document(business=Business())

    def bussiness_first(root: etree._Element) -> None:
        trace_list = first(root, "//e:TraceHeaderList")
        bussiness = first(root, "//e:Bussiness")
        trace_list.remove(bussiness)
        trace_list.insert(0, bussiness)

    assert parse_package(mutated(bussiness_first, model)).business == Business()


# --- size, parsing, root -------------------------------------------------------------------


def test_too_large_is_refused_before_parsing() -> None:
    from gateway.config import EnvelopeSettings

    data = with_dummy_signature(build_package(sample_document()))
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, STRICT, EnvelopeSettings(max_bytes=len(data) - 1))
    assert caught.value.code == "xml_too_large"


def test_junk_before_the_xml_declaration_is_malformed_in_both_profiles() -> None:
    data = b"\r\n--boundary\r\n" + with_dummy_signature(build_package(sample_document()))
    for profile in Profile:
        assert rejected(data, profile).code == "xml_malformed"


def test_truncated_document_is_malformed_with_its_line() -> None:
    data = with_dummy_signature(build_package(sample_document()))
    error = rejected(data[: len(data) // 2])
    assert error.code == "xml_malformed"
    assert error.where and error.where.startswith("line ")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'<?xml version="1.0" encoding="ISO-8859-1"?><edXML/>',
        "<edXML/>".encode("utf-16"),
    ],
    ids=["empty", "latin1", "utf16"],
)
def test_empty_or_not_utf8_is_malformed(data: bytes) -> None:
    assert rejected(data).code == "xml_malformed"


def test_doctype_is_a_forbidden_construct() -> None:
    data = build_package(sample_document()).replace(
        b"?>\n", b'?>\n<!DOCTYPE edXML [<!ENTITY x "y">]>\n', 1
    )
    assert rejected(data).code == "xml_forbidden_construct"


def test_too_deep_is_refused() -> None:
    def nest(root: etree._Element) -> None:
        node = first(root, "//e:Content")
        for _ in range(70):
            node = etree.SubElement(node, "deep")

    assert rejected(mutated(nest)).code == "xml_too_deep"


def test_too_many_nodes_is_refused() -> None:
    from gateway.config import EnvelopeSettings

    data = with_dummy_signature(build_package(sample_document()))
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, STRICT, EnvelopeSettings(max_nodes=50))
    assert caught.value.code == "xml_too_deep"


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body/></html>",
        b'<edXML xmlns="urn:other"><edXMLEnvelope/></edXML>',
    ],
)
def test_other_documents_are_not_edxml(data: bytes) -> None:
    assert rejected(data).code == "not_edxml"


# --- schema -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path_part"),
    [
        (remove("//e:MessageHeader/e:Subject"), "MessageHeader"),
        (set_text("//e:OtherInfo/e:Priority", "9"), "Priority"),
        (set_text("//e:PromulgationInfo/e:PromulgationDate", "26-11-2026"), "PromulgationDate"),
        (remove("//e:From/e:OrganName"), "From"),
        (remove("//e:TraceHeader/e:OrganId"), "TraceHeader"),
        (remove("//e:edXMLBody"), "edXMLEnvelope"),
    ],
    ids=["no-subject", "priority-9", "date-shape", "no-organ-name", "trace-organ", "no-body"],
)
def test_schema_violations_name_line_and_path(change: object, path_part: str) -> None:
    error = rejected(mutated(change))  # type: ignore[arg-type]
    assert error.code == "schema_invalid"
    assert error.where is not None and error.where.startswith("line ")
    assert path_part in error.where


def test_unknown_element_is_schema_invalid() -> None:
    def add(root: etree._Element) -> None:
        etree.SubElement(first(root, "//e:MessageHeader"), "{urn:x}Extra")

    assert rejected(mutated(add)).code == "schema_invalid"


def test_repeated_single_child_of_message_header_is_schema_invalid() -> None:
    def twice(root: etree._Element) -> None:
        subject = first(root, "//e:MessageHeader/e:Subject")
        subject.addnext(copy.deepcopy(subject))

    error = rejected(mutated(twice))
    assert error.code == "schema_invalid"
    assert "Subject" in error.message and error.where and "Subject[2]" in error.where


def test_status_packet_with_a_body_is_schema_invalid() -> None:
    def add_body(root: etree._Element) -> None:
        envelope = first(root, "//e:edXMLEnvelope")
        etree.SubElement(envelope, "{http://www.mic.gov.vn/TBT/QCVN_102_2016}edXMLBody")

    assert rejected(mutated(add_body, sample_status())).code == "schema_invalid"


# --- attachments ----------------------------------------------------------------------------


def test_reference_without_attachment_is_attachment_missing() -> None:
    assert rejected(mutated(remove("//e:AttachmentEncoded/e:Attachment"))).code == (
        "attachment_missing"
    )


def test_attachment_not_in_manifest_is_unreferenced() -> None:
    assert rejected(mutated(remove("//e:edXMLManifest/e:Reference"))).code == (
        "attachment_unreferenced"
    )


def test_attachment_with_another_content_id_leaves_its_reference_without_attachment() -> None:
    # Both halves of the pair fail; the manifest comes first in the document.
    change = set_text("//e:Attachment/e:ContentId", "cid:other")
    error = rejected(mutated(change))
    assert error.code == "attachment_missing"
    assert "cid:att-1" in error.message
    assert error.where and "/edXMLManifest/Reference" in error.where


def test_a_content_id_twice_breaks_the_pairing() -> None:
    twice_listed = rejected(mutated(duplicate("//e:edXMLManifest/e:Reference")))
    assert (twice_listed.code, twice_listed.where and "Reference[2]" in twice_listed.where) == (
        "attachment_missing",
        True,
    )
    twice_attached = rejected(mutated(duplicate("//e:AttachmentEncoded/e:Attachment")))
    assert twice_attached.code == "attachment_unreferenced"


@pytest.mark.parametrize("local", ["From", "DocumentId", "Code", "Subject", "DocumentType"])
def test_a_missing_message_header_child_is_named(local: str) -> None:
    error = rejected(mutated(remove(f"//e:MessageHeader/e:{local}")))
    assert (error.code, error.message) == ("schema_invalid", f"MessageHeader has no {local}")


@pytest.mark.parametrize("local", ["Content", "SignerInfo", "OtherInfo", "From", "Subject"])
def test_a_repeated_message_header_child_is_named(local: str) -> None:
    error = rejected(mutated(duplicate(f"//e:MessageHeader/e:{local}")))
    assert error.code == "schema_invalid"
    assert local in error.message and error.where and f"{local}[2]" in error.where


def test_a_missing_child_and_an_invalid_value_elsewhere_get_a_code() -> None:
    def both(root: etree._Element) -> None:
        remove("//e:MessageHeader/e:Subject")(root)
        set_text("//e:To[2]/e:OrganId", "not-an-organ-id")(root)

    error = rejected(mutated(both))
    assert error.code in {"schema_invalid", "organ_id_invalid"}


def test_an_invalid_value_is_not_reported_as_missing() -> None:
    error = rejected(mutated(set_text("//e:MessageHeader/e:From/e:OrganId", "12345")))
    assert error.code == "organ_id_invalid"


@pytest.mark.parametrize("value", ["not base64!", "QUJ", "QUJDRA==QUJD", "QUJ\u00e9RA=="])
def test_bad_base64_is_attachment_bad_encoding(value: str) -> None:
    change = set_text("//e:ContentTransferEncoded", value)
    assert rejected(mutated(change)).code == "attachment_bad_encoding"


def test_base64_with_line_breaks_is_accepted() -> None:
    change = set_text("//e:ContentTransferEncoded", "JVBERi0xLjQg\r\nc2FtcGxl\n")
    (attachment,) = parse_package(mutated(change)).attachments
    assert attachment.data == b"%PDF-1.4 sample"


# --- OrganId, DocumentId, dates -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["//e:From/e:OrganId", "//e:To[2]/e:OrganId", "//e:TraceHeader/e:OrganId"],
)
def test_nonstandard_organ_id_is_invalid_in_strict_and_a_warning_in_compat(path: str) -> None:
    change = set_text(path, "vxp.saas.03")
    assert rejected(mutated(change)).code == "organ_id_invalid"
    package = parse_package(mutated(change), COMPAT)
    assert "organ_id_nonstandard" in [w.code for w in package.warnings]


def test_null_trace_organ_is_a_compat_warning() -> None:
    change = set_text("//e:TraceHeader/e:OrganId", "null")
    assert rejected(mutated(change)).code == "organ_id_invalid"
    warnings = [w.code for w in parse_package(mutated(change), COMPAT).warnings]
    assert "trace_organ_missing" in warnings


@pytest.mark.parametrize(
    "document_id",
    [
        "5e515fca-3627-4f2e-b517-7169acdc8bda",  # not the format at all
        "000.00.09.H07,2026/11/26,125/SNV-VP",  # another issuer
        "000.00.05.H07,2026/11/25,125/SNV-VP",  # another date
        "000.00.05.H07,2026/11/26,126/SNV-VP",  # another number
        "000.00.05.H07,2026/11/26,125",  # no notation
    ],
)
def test_document_id_must_match_issuer_date_and_code(document_id: str) -> None:
    change = set_text("//e:MessageHeader/e:DocumentId", document_id)
    assert rejected(mutated(change)).code == "document_id_invalid"
    warnings = [w.code for w in parse_package(mutated(change), COMPAT).warnings]
    assert warnings == ["document_id_nonstandard"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("//e:TraceHeader/e:Timestamp", "2026/11/26 25:00:00"),
        ("//e:MessageHeader/e:DocumentId", None),
    ],
)
def test_dates_must_be_real(path: str, value: str | None) -> None:
    if value is None:  # a PromulgationDate of 30 February, with a DocumentId that agrees

        def change(root: etree._Element) -> None:
            first(root, "//e:PromulgationDate").text = "2026/02/30"
            first(
                root, "//e:MessageHeader/e:DocumentId"
            ).text = "000.00.05.H07,2026/02/30,125/SNV-VP"
    else:
        change = set_text(path, value)
    error = rejected(mutated(change))
    assert error.code == "date_invalid"


def test_due_date_must_be_real() -> None:
    from datetime import date

    def change(root: etree._Element) -> None:
        first(root, "//e:DueDate").text = "2026/13/01"

    model = sample_document(due_date=date(2026, 12, 15))
    assert rejected(mutated(change, model)).code == "date_invalid"


# --- recipients ---------------------------------------------------------------------------


def test_no_recipient_is_recipient_missing() -> None:
    def drop_all(root: etree._Element) -> None:
        for to in root.xpath("//e:MessageHeader/e:To", namespaces={"e": root.nsmap["edXML"]}):
            to.getparent().remove(to)

    assert rejected(mutated(drop_all)).code == "recipient_missing"


def test_same_recipient_twice_is_recipient_duplicate() -> None:
    change = set_text("//e:To[2]/e:OrganId", "000.00.06.H07")
    error = rejected(mutated(change))
    assert error.code == "recipient_duplicate"
    assert "000.00.06.H07" in error.message


# --- status packets -----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["01", "02", "03", "04", "05", "06", "13", "15", "16"])
def test_known_status_codes_are_accepted(code: str) -> None:
    package = parse_package(with_dummy_signature(build_package(sample_status(code))))
    assert package.status is not None and package.status.code == code


@pytest.mark.parametrize("code", ["00", "07", "12", "14", "99"])
def test_unknown_status_code_is_refused(code: str) -> None:
    change = set_text("//e:Status/e:StatusCode", code)
    assert rejected(mutated(change, sample_status())).code == "status_code_unknown"


def test_status_response_for_document_id_must_agree() -> None:
    change = set_text("//e:Status/e:ResponseFor/e:DocumentId", "some-uuid")
    assert rejected(mutated(change, sample_status())).code == "document_id_invalid"


# --- signature placement and policy ----------------------------------------------------------


def test_unsigned_package_is_signature_missing_in_strict_and_a_warning_in_compat() -> None:
    data = build_package(sample_document())
    assert rejected(data).code == "signature_missing"
    assert [w.code for w in parse_package(data, COMPAT).warnings] == ["signature_absent"]


def test_signature_in_the_edxml_namespace_is_not_xmldsig() -> None:
    data = with_dummy_signature(build_package(sample_document())).replace(
        b"http://www.w3.org/2000/09/xmldsig#", b"http://www.mic.gov.vn/TBT/QCVN_102_2016"
    )
    assert rejected(data).code == "signature_missing"
    warnings = [w.code for w in parse_package(data, COMPAT).warnings]
    assert warnings == ["signature_not_xmldsig"]


def test_two_signatures_are_ambiguous() -> None:
    data = with_dummy_signature(with_dummy_signature(build_package(sample_document())))
    assert rejected(data).code == "signature_ambiguous"


def test_signature_not_last_in_header_is_ambiguous() -> None:
    def move_first(root: etree._Element) -> None:
        header = first(root, "//e:edXMLHeader")
        sig = header[-1]
        header.remove(sig)
        header.insert(0, sig)

    data = with_dummy_signature(build_package(sample_document()))
    root = etree.fromstring(data)
    move_first(root)
    assert rejected(etree.tostring(root)).code == "signature_ambiguous"


def test_signature_inside_message_header_is_ambiguous() -> None:
    data = with_dummy_signature(build_package(sample_document()))
    root = etree.fromstring(data)
    sig = first(root, "//e:edXMLHeader")[-1]
    first(root, "//e:MessageHeader").append(sig)
    assert rejected(etree.tostring(root)).code == "signature_ambiguous"


def test_sha1_signature_is_weak_in_strict_and_a_warning_in_compat() -> None:
    data = with_dummy_signature(build_package(sample_document())).replace(
        b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2000/09/xmldsig#sha1"
    )
    assert rejected(data).code == "signature_weak_algorithm"
    warnings = [w.code for w in parse_package(data, COMPAT).warnings]
    assert warnings == ["signature_weak_algorithm"]


def test_attachment_is_decoded_once_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding proves the base64 valid; the bytes are kept, never decoded again."""
    from gateway.envelope import names

    calls: list[int] = []
    real = names.pybase64.b64decode

    def counting(data: bytes, /, **kwargs: bool) -> bytes:
        calls.append(len(data))
        return real(data, **kwargs)

    monkeypatch.setattr(names.pybase64, "b64decode", counting)
    package = parse_package(with_dummy_signature(build_package(sample_document())))
    (attachment,) = package.attachments
    assert len(calls) == 1
    assert attachment.size == len(b"%PDF-1.4 sample")
    assert attachment.data == b"%PDF-1.4 sample"
    assert attachment.sha256 and package.subject  # reading the rest decodes nothing
    assert len(calls) == 1


def test_signature_in_a_nested_header_is_ambiguous() -> None:
    """A signed package wrapped inside another one's content is not a signature of the outer."""
    inner = etree.fromstring(with_dummy_signature(build_package(sample_document())))
    outer = etree.fromstring(build_package(sample_document()))
    first(outer, "//e:MessageHeader/e:Content").append(inner)
    assert rejected(etree.tostring(outer)).code == "signature_ambiguous"


def test_the_readers_safety_nets_refuse_with_a_code_not_an_exception() -> None:
    """Values the schema refuses never reach the reader; if one did, it is schema_invalid at
    its element, never a ValueError."""
    from gateway.envelope import read

    el = etree.fromstring(b"<Priority>abc</Priority>")
    with pytest.raises(PackageRejected) as number:
        read._int("abc", el)
    assert (number.value.code, "whole number" in number.value.message) == ("schema_invalid", True)
    assert read._int(" 7 ", el) == 7 and read._int("  ", el) is None
    with pytest.raises(PackageRejected) as business:
        read._business_type(9, el)
    assert business.value.code == "schema_invalid" and "0-3" in business.value.message
