"""parse_package's two paths: the fast path (a schema-valid strict document, one XPath, a deferred
model) gives the same model and the same verdict as the checked path (read_checked) run alone."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from lxml import etree
from samples import NSMAP, first, mutated, sample_document, set_text, with_dummy_signature
from test_envelope_roundtrip import documents

from gateway.config import EnvelopeSettings
from gateway.envelope import (
    Business,
    Package,
    Profile,
    Receiver,
    build_package,
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


def is_deferred(package: Package) -> bool:
    return object.__getattribute__(package, "_read") is not None


def unset_fields(package: Package) -> set[str]:
    """Fields of a deferred package not read yet (their slots are empty)."""
    unset = set()
    for f in dataclasses.fields(Package):
        try:
            object.__getattribute__(package, f.name)
        except AttributeError:
            unset.add(f.name)
    return unset


def assert_same_fields(fast: Package, eager: Package) -> None:
    """Every field, those that take no part in ``==`` (raw, sha256, warnings) included."""
    for f in dataclasses.fields(Package):
        if f.name == "_read":  # the deferral itself, not a fact about the package
            continue
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
    fast = parse_package(data, STRICT)
    assert is_deferred(fast)
    eager = checked_path(data)
    assert not is_deferred(eager)
    assert_same_fields(fast, eager)


# --- the deferred model ------------------------------------------------------------------------


@pytest.fixture
def deferred() -> Package:
    package = parse_package(SAMPLE, STRICT)
    assert is_deferred(package)
    return package


def test_known_fields_are_set_without_reading(deferred: Package) -> None:
    unset = unset_fields(deferred)
    assert {"subject", "sender", "attachments"} <= unset
    assert deferred.kind == "document"
    assert deferred.raw == SAMPLE
    assert deferred.warnings == ()
    assert unset_fields(deferred) == unset
    assert is_deferred(deferred)


def test_first_access_of_another_field_reads_them_all_once(
    deferred: Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> Package:
        calls.append(args)
        return read.read_document(*args, **kwargs)

    monkeypatch.setattr(parse, "read_document", counting)
    assert deferred.subject == sample_document().subject
    assert unset_fields(deferred) == set()
    assert not is_deferred(deferred)
    assert deferred.sender == sample_document().sender
    assert deferred.sha256 == hashlib.sha256(SAMPLE).hexdigest()
    assert len(calls) == 1


def test_deferred_package_compares_equal(deferred: Package) -> None:
    assert deferred == sample_document()
    assert deferred != sample_document(subject="Về việc khác")


def test_deferred_package_repr_is_the_eager_ones(deferred: Package) -> None:
    assert repr(deferred) == repr(checked_path(SAMPLE))


def test_deferred_package_can_be_replaced(deferred: Package) -> None:
    replaced = dataclasses.replace(deferred, subject="Về việc khác")
    assert replaced == sample_document(subject="Về việc khác")
    assert replaced.raw == SAMPLE and replaced.sha256 == hashlib.sha256(SAMPLE).hexdigest()
    assert not is_deferred(replaced)


def test_deferred_package_code_is_hashable(deferred: Package) -> None:
    assert deferred.code is not None
    assert hash(deferred.code) == hash(sample_document().code)


@pytest.mark.parametrize("name", ["no_such_field", "__no_such_dunder__"])
def test_unknown_attribute_raises_before_and_after_the_read(name: str) -> None:
    before = parse_package(SAMPLE, STRICT)
    with pytest.raises(AttributeError):
        getattr(before, name)
    after = parse_package(SAMPLE, STRICT)
    assert after.subject  # reads every field
    assert not is_deferred(after)
    with pytest.raises(AttributeError):
        getattr(after, name)


# --- the same verdict ---------------------------------------------------------------------------


def twice(path: str) -> Change:
    def change(root: etree._Element) -> None:
        el = first(root, path)
        el.addnext(copy.deepcopy(el))

    return change


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
        pytest.param(twice("//e:SignerInfo"), None, "schema_invalid", True, id="two-signer-info"),
        pytest.param(twice("//e:OtherInfo"), None, "schema_invalid", True, id="two-other-info"),
        pytest.param(
            twice("//e:ToPlaces"),
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
            "attachment_unreferenced",
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
