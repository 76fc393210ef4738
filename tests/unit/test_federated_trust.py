"""Trust across provinces: a trust store holding both provinces' CAs (and a CRL file holding
both CRLs) verifies a unit of the other province, whose certificate binds its signer to its
OrganId the same way; without the other CA's CRL its revocation is unknown and refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.upstream.pair import province_directory
from gateway.client import build_letter, sign_as_unit, unit
from gateway.directory import DeliveryMode, Unit, UnitStatus, load_directory
from gateway.envelope import build_package
from gateway.errors import PackageRejected
from gateway.trust import (
    KeysLayout,
    SignatureState,
    TrustStore,
    init_keys,
    load_unit_signer,
    sign_package,
    verify_package,
)

UNITS = [("000.00.00", "Ủy ban nhân dân tỉnh", "", 1), ("000.00.05", "Sở Nội vụ", "000.00.00", 2)]


def province(folder: Path, code: str) -> KeysLayout:
    csv = folder / f"{code}.csv"
    csv.write_text(province_directory(code, UNITS), encoding="utf-8")
    return init_keys(folder / code, load_directory(csv))


def behind_the_link(code: str) -> Unit | None:
    """How a gateway sees a sender of the other province (it serves *.H08)."""
    if not code.endswith(".H08"):
        return None
    return Unit(code, code, None, 1, DeliveryMode.PULL, None, UnitStatus.ACTIVE)


@pytest.fixture(scope="module")
def provinces(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeysLayout, KeysLayout]:
    folder = tmp_path_factory.mktemp("provinces")
    return province(folder, "H07"), province(folder, "H08")


def test_a_unit_of_the_other_province_verifies_against_both_roots(
    provinces: tuple[KeysLayout, KeysLayout],
) -> None:
    ours, theirs = provinces
    trust = TrustStore.from_pem(
        ours.trust_pem.read_bytes() + theirs.trust_pem.read_bytes(),
        [ours.crl_pem.read_bytes() + theirs.crl_pem.read_bytes()],
    )
    assert len(trust.roots) == 2
    directory = load_directory(ours.root.parent / "H07.csv").with_guests(behind_the_link)
    data = sign_as_unit(
        build_letter(unit("000.00.05.H08"), [unit("000.00.05.H07")], "Liên tỉnh"), theirs.root
    )
    verified = verify_package(data, trust, directory)
    assert verified.signature_state is SignatureState.VALID
    assert verified.signer == "000.00.05.H08"

    # The other province's key cannot speak for one of our units: the binding is the same.
    forged = build_letter(unit("000.00.05.H07"), [unit("000.00.00.H07")], "Giả danh")

    key, cert = load_unit_signer(theirs.root, "000.00.05.H08")
    with pytest.raises(PackageRejected) as refused:
        verify_package(sign_package(build_package(forged), key, cert), trust, directory)
    assert refused.value.code == "sender_mismatch"


def test_without_the_other_cas_crl_revocation_is_unknown(
    provinces: tuple[KeysLayout, KeysLayout],
) -> None:
    ours, theirs = provinces
    trust = TrustStore.from_pem(
        ours.trust_pem.read_bytes() + theirs.trust_pem.read_bytes(), [ours.crl_pem.read_bytes()]
    )
    directory = load_directory(ours.root.parent / "H07.csv").with_guests(behind_the_link)
    data = sign_as_unit(
        build_letter(unit("000.00.05.H08"), [unit("000.00.05.H07")], "Liên tỉnh"), theirs.root
    )
    with pytest.raises(PackageRejected) as refused:
        verify_package(data, trust, directory)
    assert (
        refused.value.code == "cert_untrusted" and "revocation is unknown" in refused.value.message
    )
