"""The compat reader: every element of a valid package's header, trace list and business
block deleted, emptied, duplicated, moved and given an unknown child in turn. Compat accepts
each with a warning that names the element, unless the package can no longer be routed (then
a routing code); strict refuses each deviation with a precise code, as before."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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

from gateway.envelope import (
    Business,
    BusinessType,
    Package,
    Profile,
    Receiver,
    ResponseFor,
    StaffInfo,
    TraceHeader,
    build_package,
    build_tree,
    names,
    parse_package,
)
from gateway.errors import CODES, Category, PackageRejected

STRICT = Profile.STRICT
COMPAT = Profile.COMPAT

# What compat refuses when a package can no longer be routed (or, for a status, applied).
ROUTING_CODES = {"sender_missing", "recipient_missing", "document_id_missing"}
STATUS_ROUTING_CODES = ROUTING_CODES | {"status_code_unknown"}
# Every warning compat may give for a header: the deviations and the compat profile's others.
HEADER_WARNINGS = {
    "element_missing",
    "element_empty",
    "element_repeated",
    "element_out_of_order",
    "element_unknown",
    "organ_name_missing",
    "organ_id_nonstandard",
    "document_id_nonstandard",
    "trace_organ_missing",
}
# The elements whose loss can leave a package without a sender, a recipient or a key.
ROUTING_ELEMENTS = {
    "MessageHeader",
    "MessageHeader/From",
    "MessageHeader/From/OrganId",
    "MessageHeader/To",
    "MessageHeader/To/OrganId",
    "MessageHeader/DocumentId",
    "Status",
    "Status/From",
    "Status/From/OrganId",
    "Status/ResponseFor",
    "Status/ResponseFor/OrganId",
    "Status/ResponseFor/DocumentId",
    "Status/StatusCode",
}

REFERENCE = ResponseFor(
    "000.00.06.H07", "7/STC-KH", date(2026, 11, 20), "000.00.06.H07,2026/11/20,7/STC-KH"
)
# Valid packages holding every element the model writes: a document with a due date, places,
# a reply reference and a business block with staff and receivers; a status with its staff and
# a trace list.
DOCUMENT = sample_document(
    due_date=date(2026, 12, 15),
    to_places=("Lưu VT",),
    response_for=(REFERENCE,),
    business=Business(
        BusinessType.UPDATE,
        "Sửa lỗi chính tả",
        "000.00.05.H07,2026/11/25,124/SNV-VP",
        2,
        StaffInfo("Văn phòng", "Trần Thị Bình", "0912345678", "vp@example.gov.vn"),
        (Receiver("000.00.06.H07", True),),
    ),
)
_status = sample_status("03")
assert _status.status is not None
STATUS = dataclasses.replace(
    _status,
    status=dataclasses.replace(_status.status, staff=StaffInfo("Văn thư", "Lê Văn Cường")),
    traces=(TraceHeader("000.00.06.H07", datetime(2026, 11, 26, 10, 0, 0)),),
)
BASES = {"document": DOCUMENT, "status": STATUS}

# Elements of the schemas that the model does not carry, added to the built document so that
# every element a sender may write is deviated from too.
EXTRAS = {
    "//e:MessageHeader/e:From": [
        ("OrganizationInCharge", "UBND tỉnh"),
        ("OrganAdd", "1 Đường Lê Lợi"),
        ("Telephone", "0230 3822 222"),
        ("Fax", "0230 3822 223"),
        ("Website", "https://snv.example.gov.vn"),
    ],
    "//e:MessageHeader/e:OtherInfo": [
        ("SphereOfPromulgation", "Toàn tỉnh"),
        ("TyperNotation", "VT"),
        ("PromulgationAmount", "10"),
        ("PageAmount", "2"),
        ("Direction", "false"),
        ("Appendixes/Appendix", "Phụ lục I"),
    ],
    "//e:Bussiness": [
        ("BussinessDocumentInfo/DocumentInfo", "1"),
        ("BussinessDocumentInfo/DocumentReceiver", "1"),
        ("ReplacementInfoList/ReplacementInfo/DocumentId", "000.00.05.H07,2026/11/25,124/SNV-VP"),
        ("ReplacementInfoList/ReplacementInfo/OrganIdList/OrganId", "000.00.06.H07"),
    ],
}


def _base_tree(base: str) -> etree._Element:
    """The base package's tree, a document with the EXTRAS too."""
    root = build_tree(BASES[base])
    if base == "document":
        for parent_path, added in EXTRAS.items():
            parent = first(root, parent_path)
            for path, text in added:
                node = parent
                for local in path.split("/"):
                    found = node.find(names.tag(local))
                    node = etree.SubElement(node, names.tag(local)) if found is None else found
                node.text = text
    return root


Path = tuple[int, ...]  # child indexes from the root


def _header_elements(root: etree._Element) -> list[tuple[Path, str]]:
    """Each element inside edXMLHeader: its index path and its readable name below the header."""
    header = first(root, "/e:edXML/e:edXMLEnvelope/e:edXMLHeader")
    found = []
    for el in header.iter(tag=etree.Element):
        if el is header:
            continue
        path: list[int] = []
        names_: list[str] = []
        node = el
        while node is not header:
            parent = node.getparent()
            assert parent is not None
            path.append(parent.index(node))
            names_.append(etree.QName(node).localname)
            node = parent
        path += [0, 0]  # edXMLHeader is the first child of edXMLEnvelope, the root's first
        found.append((tuple(reversed(path)), "/".join(reversed(names_))))
    return found


def _at(root: etree._Element, path: Path) -> etree._Element:
    for index in path:
        root = root[index]
    return root


def _delete(el: etree._Element) -> None:
    parent = el.getparent()
    assert parent is not None
    parent.remove(el)


def _empty(el: etree._Element) -> None:
    for child in list(el):
        el.remove(child)
    el.text = None


def _duplicate(el: etree._Element) -> None:
    el.addnext(copy.deepcopy(el))


def _last(el: etree._Element) -> None:
    """Moved to the end of its parent: out of order where order matters."""
    parent = el.getparent()
    assert parent is not None
    parent.append(el)


def _up(el: etree._Element) -> None:
    """Moved out of its parent to the end of its grandparent: missing here, unknown there."""
    parent = el.getparent()
    assert parent is not None
    grandparent = parent.getparent()
    assert grandparent is not None
    grandparent.append(el)


def _foreign(el: etree._Element) -> None:
    """An element of another vocabulary as its first child: unknown there."""
    el.insert(0, etree.Element("{urn:example:other}Extra"))


OPERATIONS: dict[str, Callable[[etree._Element], None]] = {
    "delete": _delete,
    "empty": _empty,
    "duplicate": _duplicate,
    "last": _last,
    "up": _up,
    "foreign": _foreign,
}


def _garble(el: etree._Element) -> None:
    """A value that is no number, date or code (only text elements take it)."""
    el.text = "x#1"


# Combined with the others when several deviations meet in one package: a wrong value where
# the header has other deviations is still refused (or read, where any text is allowed).
COMBINED = {**OPERATIONS, "garble": _garble}


def _cases() -> list[tuple[str, Path, str, str]]:
    cases = []
    for base in BASES:
        for path, name in _header_elements(_base_tree(base)):
            for operation in OPERATIONS:
                if operation == "up" and "/" not in name:
                    continue  # a child of edXMLHeader would leave the header
                cases.append((base, path, name, operation))
    return cases


CASES = _cases()


def _package(base: str, changes: list[tuple[Path, str]]) -> bytes:
    """The base package with each (element, operation) applied in turn, then signed-shaped."""
    root = _base_tree(base)
    for path, operation in changes:
        try:
            el = _at(root, path)
        except IndexError:
            continue  # an earlier change removed it
        if el.getparent() is not None and (operation != "up" or len(path) > 3):
            COMBINED[operation](el)
    return with_dummy_signature(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _verdict(data: bytes, profile: Profile) -> Package | PackageRejected:
    try:
        return parse_package(data, profile)
    except PackageRejected as e:
        return e


def _assert_precise(error: PackageRejected) -> None:
    """A refusal from the envelope's catalogue, located in the header."""
    assert CODES[error.code].category in (Category.SCHEMA, Category.CONTENT), error
    assert error.where is not None and error.where.startswith("line "), error
    assert "/edXMLHeader" in error.where, error


def test_every_element_is_covered() -> None:
    names_ = {name for _, _, name, _ in CASES}
    assert {
        "MessageHeader/ResponseFor/PromulgationDate",
        "MessageHeader/DueDate",
        "MessageHeader/ToPlaces/Place",
        "TraceHeaderList/Bussiness/StaffInfo/Mobile",
        "TraceHeaderList/Bussiness/BussinessDocumentInfo/ReceiverList/Receiver/ReceiverType",
        "Status/StaffInfo/Staff",
        "TraceHeaderList/TraceHeader/Timestamp",
        "MessageHeader/OtherInfo/Appendixes/Appendix",
        "TraceHeaderList/Bussiness/ReplacementInfoList/ReplacementInfo/OrganIdList/OrganId",
    } <= names_
    assert len(CASES) > 400
    for base in BASES:  # the bases are valid in both profiles
        data = with_dummy_signature(etree.tostring(_base_tree(base)))
        assert parse_package(data, STRICT) == parse_package(data, COMPAT)
        assert parse_package(data, COMPAT).warnings == ()


@pytest.mark.parametrize(
    ("base", "path", "name", "operation"), CASES, ids=[f"{c[0]}:{c[2]}:{c[3]}" for c in CASES]
)
def test_compat_reads_each_deviation_that_strict_refuses(
    base: str, path: Path, name: str, operation: str
) -> None:
    data = _package(base, [(path, operation)])
    strict, compat = _verdict(data, STRICT), _verdict(data, COMPAT)
    local = "Extra" if operation == "foreign" else name.rpartition("/")[2]
    if isinstance(strict, Package):  # no deviation (an optional element, an order that is free)
        assert isinstance(compat, Package) and compat == strict and compat.warnings == ()
        return
    _assert_precise(strict)
    if isinstance(compat, PackageRejected):
        codes = STATUS_ROUTING_CODES if base == "status" else ROUTING_CODES
        assert compat.code in codes and name in ROUTING_ELEMENTS, compat
        return
    assert compat.sender.organ_id and compat.recipients and compat.document_id
    assert {w.code for w in compat.warnings} <= HEADER_WARNINGS, compat.warnings
    assert any(local in w.message for w in compat.warnings), compat.warnings


@pytest.mark.parametrize(
    ("base", "change", "code"),
    [
        ("document", remove("//e:MessageHeader/e:From"), "sender_missing"),
        ("document", set_text("//e:MessageHeader/e:From/e:OrganId", " "), "sender_missing"),
        ("document", remove("//e:MessageHeader"), "sender_missing"),
        ("document", remove("//e:MessageHeader/e:DocumentId"), "document_id_missing"),
        ("document", set_text("//e:MessageHeader/e:DocumentId", ""), "document_id_missing"),
        ("status", remove("//e:Status/e:From"), "sender_missing"),
        ("status", remove("//e:Status"), "sender_missing"),
        ("status", remove("//e:Status/e:ResponseFor"), "recipient_missing"),
        ("status", set_text("//e:Status/e:ResponseFor/e:OrganId", ""), "recipient_missing"),
        ("status", remove("//e:Status/e:ResponseFor/e:DocumentId"), "document_id_missing"),
        ("status", remove("//e:Status/e:StatusCode"), "status_code_unknown"),
    ],
)
def test_a_package_that_cannot_be_routed_is_refused_in_compat_with_its_code(
    base: str, change: Callable[[etree._Element], None], code: str
) -> None:
    data = mutated(change, BASES[base])
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, COMPAT)
    assert caught.value.code == code
    with pytest.raises(PackageRejected):
        parse_package(data, STRICT)


def test_without_any_recipient_compat_refuses_recipient_missing() -> None:
    def no_recipient(root: etree._Element) -> None:
        for to in root.iterfind(f".//{names.tag('To')}"):
            _empty(to)

    with pytest.raises(PackageRejected) as caught:
        parse_package(mutated(no_recipient), COMPAT)
    assert caught.value.code == "recipient_missing"


def _warnings(data: bytes) -> dict[str, str]:
    return {w.code: w.message for w in parse_package(data, COMPAT).warnings}


def test_compat_reads_what_is_there_and_leaves_out_what_is_missing() -> None:
    def deviations(root: etree._Element) -> None:
        remove("//e:MessageHeader/e:Subject")(root)
        set_text("//e:PromulgationInfo/e:PromulgationDate", "")(root)
        remove("//e:TraceHeader/e:Timestamp")(root)
        duplicate("//e:MessageHeader/e:From")(root)
        first(root, "//e:MessageHeader/e:From[2]/e:OrganName").text = "Another name"

    data = mutated(deviations)
    package = parse_package(data, COMPAT)
    assert package.subject is None and package.promulgation_date is None
    assert package.traces == (TraceHeader("000.00.05.H07", None),)
    assert package.sender == sample_document().sender  # the first From
    warnings = _warnings(data)
    assert set(warnings) == {"element_missing", "element_empty", "element_repeated"}
    assert "PromulgationDate is empty" in warnings["element_empty"]
    assert "/MessageHeader/From[2]" in warnings["element_repeated"]
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, STRICT)
    assert caught.value.code == "schema_invalid"


def test_a_recipient_named_twice_is_routed_once_in_compat() -> None:
    data = mutated(duplicate("//e:MessageHeader/e:To"))
    package = parse_package(data, COMPAT)
    assert [r.organ_id for r in package.recipients] == ["000.00.06.H07", "000.01.20.H07"]
    assert "/MessageHeader/To[2]" in _warnings(data)["element_repeated"]
    with pytest.raises(PackageRejected) as caught:
        parse_package(data, STRICT)
    assert caught.value.code == "recipient_duplicate"


def test_unknown_and_out_of_order_elements_are_named() -> None:
    def foreign(root: etree._Element) -> None:
        etree.SubElement(first(root, "//e:MessageHeader"), "{urn:x}Extra").text = "x"

    assert (
        "MessageHeader has an unknown element Extra"
        in _warnings(mutated(foreign))["element_unknown"]
    )

    def trace_list_first(root: etree._Element) -> None:
        header = first(root, "//e:edXMLHeader")
        header.insert(0, first(root, "//e:TraceHeaderList"))

    message = _warnings(mutated(trace_list_first))["element_out_of_order"]
    assert "TraceHeaderList is out of order in edXMLHeader (before MessageHeader)" in message


def test_a_wrong_value_is_still_refused_in_compat() -> None:
    """Compat tolerates a missing or empty element, not one that says something wrong."""
    for change, code in [
        (set_text("//e:OtherInfo/e:Priority", "9"), "schema_invalid"),
        (set_text("//e:TraceHeader/e:Timestamp", "2026/11/26 25:00:00"), "date_invalid"),
        (set_text("//e:PromulgationDate", "26-11-2026"), "schema_invalid"),
    ]:
        with pytest.raises(PackageRejected) as caught:
            parse_package(mutated(change), COMPAT)
        assert caught.value.code == code


def test_the_body_and_attachments_stay_strict_in_compat() -> None:
    for change, code in [
        (remove("//e:AttachmentEncoded/e:Attachment"), "attachment_missing"),
        (remove("//e:edXMLBody"), "schema_invalid"),
        (remove("//e:Attachment/e:ContentType"), "schema_invalid"),
    ]:
        with pytest.raises(PackageRejected) as caught:
            parse_package(mutated(change), COMPAT)
        assert caught.value.code == code


def test_bytes_that_are_not_xml_are_not_repaired() -> None:
    data = mutated(remove("//e:MessageHeader/e:Subject"))
    with pytest.raises(PackageRejected) as caught:
        parse_package(data[: len(data) // 2], COMPAT)
    assert caught.value.code == "xml_malformed"


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(BASES)).flatmap(
        lambda base: st.tuples(
            st.just(base),
            st.lists(
                st.tuples(
                    st.sampled_from([c[1] for c in CASES if c[0] == base]),
                    st.sampled_from(sorted(COMBINED)),
                ),
                min_size=2,
                max_size=4,
            ),
        )
    )
)
def test_several_deviations_at_once(case: tuple[str, list[tuple[Path, str]]]) -> None:
    """Several deviations in one package: compat reads it or refuses it with a routing code
    (or, when a value is garbled, that value's code); whatever it reads can be routed; strict
    accepts only what compat reads without warnings."""
    base, changes = case
    data = _package(base, changes)
    strict, compat = _verdict(data, STRICT), _verdict(data, COMPAT)
    if isinstance(strict, PackageRejected):
        _assert_precise(strict)
    if isinstance(compat, PackageRejected):
        codes = STATUS_ROUTING_CODES if base == "status" else ROUTING_CODES
        if any(operation == "garble" for _, operation in changes):
            _assert_precise(compat)
        else:
            assert compat.code in codes, compat
        return
    assert compat.sender.organ_id and compat.recipients and compat.document_id
    assert {w.code for w in compat.warnings} <= HEADER_WARNINGS, compat.warnings
    assert isinstance(strict, Package) == (compat.warnings == ()), (strict, compat.warnings)


def test_what_each_element_admits_and_requires_is_read_from_the_compat_schemas() -> None:
    from gateway.envelope.deviations import schema_children

    children = schema_children()
    status = children["Status"]
    assert status.admitted == {
        "ResponseFor",
        "From",
        "StatusCode",
        "Description",
        "Timestamp",
        "StaffInfo",
    }
    assert status.required == {"ResponseFor", "From", "StatusCode", "Timestamp"}
    assert {"MessageHeader", "TraceHeaderList", "Signature"} <= children["edXMLHeader"].admitted
    assert children["MessageHeader"].required == set()  # a choice: counted by constraints
    assert children["From"].required == {"OrganId"}  # compat: OrganName is optional
    assert children["TraceHeader"].required == {"Timestamp"}
    # Code is complex in MessageHeader and a text in ResponseFor: its children are those of
    # the one declaration that has any.
    assert children["Code"].required == {"CodeNumber", "CodeNotation"}


def test_what_follows_an_unexpected_element_is_still_checked() -> None:
    """libxml2 validates nothing after an unexpected element in the same parent; compat
    validates the rest again, so what follows is still named, or refused when it is wrong."""

    def unknown_first(root: etree._Element) -> None:
        first(root, "//e:MessageHeader").insert(0, etree.Element("{urn:x}Extra"))

    def then(*changes: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
        def change(root: etree._Element) -> None:
            for c in (unknown_first, *changes):
                c(root)

        return change

    with pytest.raises(PackageRejected) as caught:
        parse_package(mutated(then(set_text("//e:OtherInfo/e:Priority", "abc"))), COMPAT)
    assert caught.value.code == "schema_invalid" and "Priority" in str(caught.value.where)
    warnings = _warnings(mutated(then(set_text("//e:MessageHeader/e:Subject", ""))))
    assert set(warnings) == {"element_unknown", "element_empty"}

    def trace_list_first(root: etree._Element) -> None:
        first(root, "//e:edXMLHeader").insert(0, first(root, "//e:TraceHeaderList"))
        set_text("//e:Bussiness/e:BussinessDocType", "7")(root)

    with pytest.raises(PackageRejected) as caught:
        parse_package(mutated(trace_list_first, DOCUMENT), COMPAT)
    assert caught.value.code == "schema_invalid" and "BussinessDocType" in str(caught.value.where)

    # After the signature, where nothing is expected: validated one place back.
    root = etree.fromstring(with_dummy_signature(build_package(DOCUMENT)))
    first(root, "//e:edXMLHeader").append(first(root, "//e:TraceHeaderList"))
    set_text("//e:Bussiness/e:Paper", "abc")(root)
    with pytest.raises(PackageRejected) as caught:
        parse_package(etree.tostring(root), COMPAT)
    assert caught.value.code == "schema_invalid" and "Paper" in str(caught.value.where)

    def many_unknown(root: etree._Element) -> None:
        for i in range(30):
            first(root, "//e:MessageHeader").insert(0, etree.Element(f"{{urn:x}}Extra{i}"))

    package = parse_package(mutated(many_unknown), COMPAT)
    assert [w.code for w in package.warnings] == ["element_unknown"] * 30
