"""The envelope's two paths: the fast path (a schema-valid strict document, one XPath, the model
read when asked for) gives the same model and the same verdict as the checked path
(read_checked) run alone; the Reading reads the model once, and only when asked."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from lxml import etree
from samples import (
    NSMAP,
    duplicate,
    first,
    mutated,
    sample_document,
    set_text,
    with_dummy_signature,
)
from test_envelope_roundtrip import documents

from gateway.config import EnvelopeSettings
from gateway.envelope import (
    Business,
    Package,
    Profile,
    Receiver,
    build_package,
    check,
    parse,
    parse_package,
    read,
)
from gateway.envelope.parse import package_kind, read_checked
from gateway.envelope.schema import schema_errors
from gateway.envelope.xmlsafe import parse_xml
from gateway.errors import PackageRejected

STRICT = Profile.STRICT
LIMITS = EnvelopeSettings()
SAMPLE = with_dummy_signature(build_package(sample_document()))
Change = Callable[[etree._Element], object]


def checked_path(data: bytes) -> Package:
    """The checked path alone: every check in order, on a tree parsed as parse_package parses."""
    root = parse_xml(data, LIMITS, content_only=True)
    kind = package_kind(root)
    assert kind is not None
    return read_checked(root, data, kind, STRICT, schema_errors(root, kind, STRICT))


def verdict(reader: Callable[[bytes], Package], data: bytes) -> str:
    try:
        reader(data)
    except PackageRejected as e:
        return e.code
    return "accepted"


def assert_same_fields(fast: Package, eager: Package) -> None:
    """Every field, those that take no part in ``==`` (raw, sha256, warnings) included."""
    for f in dataclasses.fields(Package):
        if f.name == "attachments":
            assert [_facts(a) for a in fast.attachments] == [_facts(a) for a in eager.attachments]
        else:
            assert getattr(fast, f.name) == getattr(eager, f.name), f.name


def _facts(a: object) -> tuple[object, ...]:
    return tuple(
        getattr(a, n) for n in ("content_id", "name", "content_type", "data", "description")
    )


# --- the same model -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(documents())
def test_fast_path_model_equals_the_checked_paths(model: Package) -> None:
    data = with_dummy_signature(build_package(model))
    assert_same_fields(check(data, STRICT).package(), checked_path(data))


# --- the reading -------------------------------------------------------------------------------


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each reading of a document's model."""
    calls: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> Package:
        calls.append(args)
        return read.read_document(*args, **kwargs)

    monkeypatch.setattr(parse, "read_document", counting)
    return calls


def test_a_valid_package_is_routed_without_reading_its_model(reads: list[object]) -> None:
    reading = check(SAMPLE, STRICT)
    assert reading.kind == "document"
    assert reading.sender == sample_document().sender.organ_id
    assert reading.warnings == ()
    assert reads == []


def test_the_model_is_read_once_when_first_asked_for(reads: list[object]) -> None:
    reading = check(SAMPLE, STRICT)
    package = reading.package()
    assert package == sample_document()
    assert package.raw == SAMPLE and package.sha256 == hashlib.sha256(SAMPLE).hexdigest()
    assert reading.package() is package
    assert len(reads) == 1


def test_a_reading_of_another_tree_reads_that_tree() -> None:
    reading = check(SAMPLE, STRICT)
    other = copy.deepcopy(reading.tree)
    set_text("//e:Subject", "Về việc khác")(other)
    assert reading.of(other).package().subject == "Về việc khác"
    assert reading.package().subject == sample_document().subject


def test_a_compat_reading_keeps_its_warnings_on_another_tree() -> None:
    unsigned = build_package(sample_document())
    reading = check(unsigned, Profile.COMPAT)
    assert [w.code for w in reading.warnings] == ["signature_absent"]
    assert reading.of(copy.deepcopy(reading.tree)).package().warnings == reading.warnings


# --- the same verdict ---------------------------------------------------------------------------


def remove_all(path: str) -> Change:
    def change(root: etree._Element) -> None:
        found = root.xpath(path, namespaces=NSMAP)
        assert isinstance(found, list) and found, path
        for el in found:
            assert isinstance(el, etree._Element)
            parent = el.getparent()
            assert parent is not None
            parent.remove(el)

    return change


def texts(**by_local_name: str) -> Change:
    """Set the text of MessageHeader children (DocumentId) or grandchildren (CodeNumber...)."""

    def change(root: etree._Element) -> None:
        for local, value in by_local_name.items():
            first(root, f"//e:MessageHeader//e:{local}").text = value

    return change


def comment_inside(path: str, before: str, after: str) -> Change:
    """The element's text split by a comment: its string value is before + after."""

    def change(root: etree._Element) -> None:
        el = first(root, path)
        el.text = before
        comment = etree.Comment(" x ")
        comment.tail = after
        el.append(comment)

    return change


DOCUMENT_ID = "000.00.05.H07,2026/11/26,{}"
ATTACHMENT = "//e:AttachmentEncoded/e:Attachment"


@pytest.mark.parametrize(
    ("change", "model", "expected", "schema_valid"),
    [
        pytest.param(
            remove_all("//e:MessageHeader/e:To"), None, "recipient_missing", True, id="no-to"
        ),
        pytest.param(
            duplicate("//e:SignerInfo"), None, "schema_invalid", True, id="two-signer-info"
        ),
        pytest.param(duplicate("//e:OtherInfo"), None, "schema_invalid", True, id="two-other-info"),
        pytest.param(
            duplicate("//e:ToPlaces"),
            sample_document(to_places=("Như trên", "Lưu VT")),
            "schema_invalid",
            True,
            id="two-to-places",
        ),
        pytest.param(
            texts(DocumentId="000.00.09.H07,2026/11/26,125/SNV-VP"),
            None,
            "document_id_invalid",
            True,
            id="document-id-other-organ",
        ),
        pytest.param(
            texts(DocumentId="000.00.05.H07,2026/11/25,125/SNV-VP"),
            None,
            "document_id_invalid",
            True,
            id="document-id-other-date",
        ),
        pytest.param(
            texts(DocumentId=DOCUMENT_ID.format("126/SNV-VP")),
            None,
            "document_id_invalid",
            True,
            id="document-id-other-number",
        ),
        pytest.param(
            texts(DocumentId=DOCUMENT_ID.format("125/SNV-VB")),
            None,
            "document_id_invalid",
            True,
            id="document-id-other-notation",
        ),
        pytest.param(
            texts(
                DocumentId="\n  " + DOCUMENT_ID.format("125/SNV \t\r\n VP") + " \n",
                CodeNumber="\t125 ",
                CodeNotation=" SNV  VP\n",
            ),
            None,
            "accepted",
            True,
            id="whitespace-same-once-collapsed",
        ),
        pytest.param(
            texts(DocumentId=DOCUMENT_ID.format("125/ SNV VP"), CodeNotation="SNV VP"),
            None,
            "document_id_invalid",
            True,
            id="whitespace-differs-once-collapsed",
        ),
        pytest.param(
            set_text(f"{ATTACHMENT}/e:ContentId", "\n   cid:att-1 \t"),
            None,
            "accepted",
            True,
            id="content-id-padded",
        ),
        pytest.param(
            set_text(f"{ATTACHMENT}/e:ContentId", "cid:att-2"),
            None,
            "attachment_missing",
            False,
            id="content-id-other",
        ),
        pytest.param(
            comment_inside("//e:MessageHeader/e:DocumentId", DOCUMENT_ID.format(""), "125/SNV-VP"),
            None,
            "accepted",  # a comment is not content: the value is the text around it
            True,
            id="comment-in-document-id",
        ),
        pytest.param(
            comment_inside("//e:Code/e:CodeNumber", "12", "5"),
            None,
            "accepted",
            True,
            id="comment-in-code-number",
        ),
        pytest.param(
            texts(DocumentId=DOCUMENT_ID.format("125\u00a0/SNV-VP"), CodeNumber="125\u00a0"),
            None,
            "accepted",  # a no-break space is content, on both sides
            True,
            id="no-break-space-ending-code-number",
        ),
        pytest.param(
            set_text(f"{ATTACHMENT}/e:ContentTransferEncoded", "JVBERi0xLjQgc2Ft*Gxl"),
            None,
            "attachment_bad_encoding",
            True,
            id="bad-base64",
        ),
        pytest.param(
            set_text(f"{ATTACHMENT}/e:ContentTransferEncoded", "JVBERi0x\r\nLjQgc2Ft\r\ncGxl\r\n"),
            None,
            "accepted",
            True,
            id="mime-line-breaks",
        ),
        pytest.param(lambda root: None, None, "accepted", True, id="unchanged"),
    ],
)
def test_fast_path_verdict_is_the_checked_paths(
    change: Change, model: Package | None, expected: str, schema_valid: bool
) -> None:
    data = mutated(change, model)
    # Schema-valid mutations reach the fast path's own checks (FAST_CHECKS, base64 decoding).
    root = parse_xml(data, LIMITS)
    kind = package_kind(root)
    assert kind is not None
    assert (schema_errors(root, kind, STRICT) == []) is schema_valid
    checked = verdict(checked_path, data)
    assert checked == expected
    assert verdict(lambda d: parse_package(d, STRICT), data) == checked
    if checked == "accepted":
        assert_same_fields(parse_package(data, STRICT), checked_path(data))


# --- depth -------------------------------------------------------------------------------------


def test_a_low_depth_limit_still_applies_to_a_valid_document() -> None:
    with pytest.raises(PackageRejected) as caught:
        parse_package(SAMPLE, STRICT, EnvelopeSettings(max_depth=5))
    assert caught.value.code == "xml_too_deep"


def test_a_valid_document_passes_the_default_depth_limit() -> None:
    assert parse_package(SAMPLE, STRICT, LIMITS) == sample_document()


def test_the_deepest_valid_document_is_exactly_strict_depth_deep() -> None:
    # TraceHeaderList/Bussiness/BussinessDocumentInfo/ReceiverList/Receiver/OrganId: depth 9.
    model = sample_document(business=Business(receivers=(Receiver("000.00.06.H07", True),)))
    data = with_dummy_signature(build_package(model))
    at_bound = EnvelopeSettings(max_depth=parse.STRICT_DEPTH)
    assert parse_package(data, STRICT, at_bound) == model
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, STRICT, EnvelopeSettings(max_depth=parse.STRICT_DEPTH - 1))
    assert caught.value.code == "xml_too_deep"
