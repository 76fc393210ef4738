"""Letters and status packets built by gateway.client pass the strict profile once signed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from trustkit import NOW, OTHER, SENDER, Pki

from gateway.client import (
    LETTER_TYPE,
    build_letter,
    build_status,
    business_change,
    default_number,
    guess_content_type,
    make_attachment,
    response_for,
    sign_as_unit,
    split_document_key,
    unit,
)
from gateway.envelope import (
    BusinessType,
    Kind,
    Organization,
    Package,
    build_package,
    make_document_id,
    parse_package,
)
from gateway.errors import ConfigError
from gateway.trust import init_keys, load_trust, sign_package, verify_package

WHEN = dt.datetime(2026, 11, 26, 15, 4, 5, 678_900)  # Vietnam time
THIRD = "000.01.20.H07"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def signed(pki: Pki, package: Package) -> bytes:
    key, cert = pki.unit(package.sender.organ_id)
    return sign_package(build_package(package), key, cert)


def verified(pki: Pki, package: Package) -> Package:
    result = verify_package(signed(pki, package), pki.trust(), pki.directory(), "strict", NOW)
    assert result.signature_state == "valid"
    return result.package


def letter(**changes: object) -> Package:
    args: dict[str, object] = {"now": WHEN}
    args.update(changes)
    return build_letter(
        Organization(SENDER, "Sở Nội vụ"),
        [Organization(OTHER, "Sở Tài chính"), Organization(THIRD, "Phòng Nội vụ huyện")],
        "Về việc báo cáo công tác cải cách hành chính",
        **args,  # type: ignore[arg-type]
    )


def test_letter_with_defaults_passes_strict_verification(pki: Pki) -> None:
    package = verified(pki, letter(content="Đề nghị các đơn vị báo cáo."))
    assert package.kind is Kind.DOCUMENT
    assert package.sender.organ_id == SENDER
    assert [r.organ_id for r in package.recipients] == [OTHER, THIRD]
    assert package.document_id == make_document_id(SENDER, WHEN.date(), "150405678", "CV")
    assert package.document_key == f"{SENDER}|{SENDER},2026/11/26,150405678/CV"
    assert str(package.code) == "150405678/CV"
    assert package.document_type == LETTER_TYPE
    assert package.document_type is not None and package.document_type.name == "Công văn"
    assert package.promulgation_date == WHEN.date()
    assert package.content == "Đề nghị các đơn vị báo cáo."
    assert package.priority == 0
    assert package.business is None
    assert [(t.organ_id, t.timestamp) for t in package.traces] == [
        (SENDER, WHEN.replace(microsecond=0))
    ]


def test_letter_keeps_number_notation_priority_and_attachments(pki: Pki) -> None:
    attachments = [
        make_attachment("cong-van.pdf", b"%PDF-1.4 letter", 1),
        make_attachment("bao-cao.docx", b"PK\x03\x04 report", 2, "Báo cáo"),
        make_attachment("du-lieu.bin", bytes(range(256)), 3),
    ]
    package = verified(
        pki, letter(number="125", notation="SNV-VP/TH", priority=3, attachments=attachments)
    )
    assert package.document_id == f"{SENDER},2026/11/26,125/SNV-VP/TH"
    assert package.priority == 3
    assert [(a.content_id, a.name, a.content_type, a.data) for a in package.attachments] == [
        ("cid:att-1", "cong-van.pdf", "application/pdf", b"%PDF-1.4 letter"),
        (
            "cid:att-2",
            "bao-cao.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            b"PK\x03\x04 report",
        ),
        ("cid:att-3", "du-lieu.bin", "application/octet-stream", bytes(range(256))),
    ]
    assert package.attachments[1].description == "Báo cáo"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("revoke", BusinessType.REVOKE),
        ("update", BusinessType.UPDATE),
        ("replace", BusinessType.REPLACE),
    ],
)
def test_business_change_names_its_target_and_passes_strict(
    pki: Pki, kind: str, expected: BusinessType
) -> None:
    target = f"{SENDER},2026/11/20,99/SNV-VP"
    business = business_change(kind, f"{SENDER}|{target}", "Sai sót số liệu")
    package = verified(pki, letter(business=business))
    assert package.business is not None
    assert package.business.doc_type is expected
    assert package.business.document_id == target
    assert package.business.reason == "Sai sót số liệu"


def test_business_change_accepts_a_bare_document_id() -> None:
    target = f"{SENDER},2026/11/20,99/SNV-VP"
    assert business_change(BusinessType.REVOKE, target).document_id == target


@pytest.mark.parametrize("target", ["99/SNV-VP", f"{SENDER}|not-an-id", ""])
def test_business_change_refuses_a_target_that_is_not_a_document_id(target: str) -> None:
    with pytest.raises(ValueError, match=r"DocumentId|document key"):
        business_change("revoke", target)


def test_business_change_refuses_new() -> None:
    with pytest.raises(ValueError, match="revoke, an update or a replace"):
        business_change(BusinessType.NEW, f"{SENDER},2026/11/20,99/SNV-VP")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": "12/3"}, "number"),
        ({"number": "12,3"}, "number"),
        ({"notation": "A,B"}, "notation"),
        ({"notation": " "}, "notation"),
        ({"priority": 5}, "priority"),
        ({"priority": -1}, "priority"),
    ],
)
def test_letter_refuses_values_no_gateway_accepts(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        letter(**changes)


def test_letter_refuses_no_recipient_a_repeated_one_and_an_empty_subject() -> None:
    sender = Organization(SENDER, "Sở Nội vụ")
    other = Organization(OTHER, "Sở Tài chính")
    with pytest.raises(ValueError, match="at least one recipient"):
        build_letter(sender, [], "Về việc")
    with pytest.raises(ValueError, match="named twice"):
        build_letter(sender, [other, other], "Về việc")
    with pytest.raises(ValueError, match="subject"):
        build_letter(sender, [other], "  ")


def test_default_numbers_follow_the_clock_to_the_millisecond() -> None:
    assert default_number(dt.datetime(2026, 1, 2, 3, 4, 5, 6_000)) == "030405006"
    assert default_number(WHEN) < default_number(WHEN + dt.timedelta(milliseconds=1))


def test_status_packet_answers_the_document_of_its_key(pki: Pki) -> None:
    key = f"{SENDER}|{SENDER},2026/11/26,125/SNV-VP"
    status = build_status(
        Organization(OTHER, "Sở Tài chính"), key, "03", description="Đã tiếp nhận", now=WHEN
    )
    package = verified(pki, status)
    assert package.kind is Kind.STATUS
    assert package.document_key == key
    assert package.sender.organ_id == OTHER
    assert [r.organ_id for r in package.recipients] == [SENDER]
    assert package.status is not None
    assert package.status.code == "03"
    assert package.status.description == "Đã tiếp nhận"
    assert package.status.timestamp == WHEN.replace(microsecond=0)
    answered = package.status.response_for
    assert (answered.organ_id, answered.code, answered.promulgation_date) == (
        SENDER,
        "125/SNV-VP",
        dt.date(2026, 11, 26),
    )
    assert answered.document_id == f"{SENDER},2026/11/26,125/SNV-VP"


def test_status_of_a_built_letter_round_trips_its_key(pki: Pki) -> None:
    sent = letter(number="7", notation="QĐ/UBND")
    status = build_status(Organization(THIRD, "Phòng Nội vụ huyện"), sent.document_key, "01")
    package = verified(pki, status)
    assert package.document_key == sent.document_key
    assert package.status is not None
    assert package.status.response_for.code == "7/QĐ/UBND"


def test_status_refuses_an_unknown_code() -> None:
    with pytest.raises(ValueError, match="status code '07'"):
        build_status(Organization(OTHER, "x"), f"{SENDER}|{SENDER},2026/11/26,1/CV", "07")


@pytest.mark.parametrize(
    "key",
    [
        f"{SENDER},2026/11/26,1/CV",  # a DocumentId without the sender
        f"|{SENDER},2026/11/26,1/CV",
        f"{SENDER}|{SENDER},2026-11-26,1/CV",
        f"{SENDER}|{SENDER},2026/11/26,1",
    ],
)
def test_document_key_must_be_sender_bar_document_id(key: str) -> None:
    with pytest.raises(ValueError, match="not a document key"):
        split_document_key(key)
    with pytest.raises(ValueError):
        response_for(key)


def test_status_packet_parses_without_a_signature_check() -> None:
    key = f"{SENDER}|{SENDER},2026/11/26,125/SNV-VP"
    data = build_package(build_status(Organization(OTHER, "Sở Tài chính"), key, "06"))
    package = parse_package(data, profile="compat")
    assert package.status is not None and package.status.code == "06"


def test_unit_takes_its_name_from_the_directory_else_its_code(pki: Pki) -> None:
    directory = pki.directory()
    assert unit(OTHER, directory) == Organization(OTHER, "Sở Tài chính")
    assert unit("000.00.99.H07", directory) == Organization("000.00.99.H07", "000.00.99.H07")
    assert unit(OTHER) == Organization(OTHER, OTHER)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.pdf", "application/pdf"),
        ("A.PDF", "application/pdf"),
        ("scan.png", "image/png"),
        ("bang.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("van-ban.odt", "application/vnd.oasis.opendocument.text"),
        ("ghi-chu.txt", "text/plain"),
        ("khong-ro", "application/octet-stream"),
    ],
)
def test_content_type_is_guessed_from_the_file_name(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


def test_sign_as_unit_uses_the_senders_key_from_a_key_folder(tmp_path: Path, pki: Pki) -> None:
    directory = pki.directory()
    init_keys(tmp_path / "keys", directory)
    data = sign_as_unit(letter(), tmp_path / "keys")
    result = verify_package(data, load_trust(tmp_path / "keys"), directory, "strict")
    assert result.signature_state == "valid"
    assert result.signer == SENDER
    stranger = build_letter(Organization("000.00.99.H07", "x"), [unit(OTHER)], "Về việc")
    with pytest.raises(ConfigError, match=r"000\.00\.99\.H07"):
        sign_as_unit(stranger, tmp_path / "keys")
