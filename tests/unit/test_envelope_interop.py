"""Real packets from other systems: accepted with named warnings in compat, refused in strict."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.envelope import Profile, parse_package
from gateway.errors import PackageRejected

INTEROP = Path(__file__).parents[1] / "data" / "interop"


def read(name: str) -> bytes:
    return (INTEROP / name).read_bytes()


def test_vxp_2025_letter_is_accepted_in_compat_with_its_deviations() -> None:
    package = parse_package(read("vxp-2025-874e0f18.edxml"), Profile.COMPAT)
    assert package.sender.organ_id == "vxp.saas.03"
    assert package.document_id == "5e515fca-3627-4f2e-b517-7169acdc8bda"
    (attachment,) = package.attachments
    assert attachment.content_type == "application/pdf" and attachment.size > 10_000
    assert {w.code for w in package.warnings} == {
        "signature_absent",
        "organ_id_nonstandard",
        "organ_name_missing",
        "document_id_nonstandard",
        "trace_organ_missing",
    }
    # Both trace headers lack an OrganId: one says "null", the other has none.
    assert [t.organ_id for t in package.traces] == [None, None]


def test_upload_with_bussiness_first_is_accepted_in_compat() -> None:
    package = parse_package(read("upload-1da394ba.edxml"), Profile.COMPAT)
    assert [a.name for a in package.attachments] == ["localA.txt", "localB.txt", "localC.txt"]
    assert package.business is not None and package.business.doc_type == 0
    assert {w.code for w in package.warnings} == {
        "signature_absent",
        "organ_id_nonstandard",
        "document_id_nonstandard",
    }


@pytest.mark.parametrize("name", ["vxp-2025-874e0f18.edxml", "upload-1da394ba.edxml"])
def test_real_packets_are_refused_in_strict_for_their_missing_signature(name: str) -> None:
    with pytest.raises(PackageRejected) as caught:
        parse_package(read(name), Profile.STRICT)
    assert caught.value.code == "signature_missing"


@pytest.mark.parametrize("profile", list(Profile))
def test_sdk_sample_with_undeclared_prefix_is_malformed(profile: Profile) -> None:
    with pytest.raises(PackageRejected) as caught:
        parse_package(read("sdk-edoc.edxml"), profile)
    assert caught.value.code == "xml_malformed"
    assert "xlink" in caught.value.message


@pytest.mark.parametrize("profile", list(Profile))
def test_leading_junk_is_not_repaired(profile: Profile) -> None:
    with pytest.raises(PackageRejected) as caught:
        parse_package(b"\xef\xbb\xbfjunk\n" + read("upload-1da394ba.edxml"), profile)
    assert caught.value.code == "xml_malformed"
