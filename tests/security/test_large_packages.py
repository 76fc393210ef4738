"""Scanned letters: a text node over libxml2's 10 MB limit is accepted (signed, verified,
read), while what makes XML hostile is still refused before the parser builds anything."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
from trustkit import NOW, SENDER, Pki, document_from

from gateway.config import EnvelopeSettings
from gateway.envelope import Attachment, Profile, build_package, parse_package
from gateway.envelope.xmlsafe import HUGE_TEXT_BYTES, parse_xml
from gateway.errors import PackageRejected
from gateway.trust import sign_package, verify_package

SCAN = os.urandom(9 * 1024 * 1024)  # 12.6 MB of base64: one text node over the 10 MB limit


@pytest.fixture(scope="module")
def kit() -> Pki:
    return Pki()


@pytest.fixture(scope="module")
def signed(kit: Pki) -> bytes:
    package = dataclasses.replace(
        document_from(SENDER),
        attachments=(Attachment("cid:scan", "ho-so.pdf", "application/pdf", SCAN),),
    )
    key, cert = kit.unit(SENDER)
    return sign_package(build_package(package), key, cert)


def test_a_scan_is_signed_verified_and_read(kit: Pki, signed: bytes) -> None:
    assert len(signed) > HUGE_TEXT_BYTES
    verified = verify_package(signed, kit.trust(), kit.directory(), Profile.STRICT, NOW)
    assert verified.signature_state == "valid"
    (attachment,) = verified.package.attachments
    assert hashlib.sha256(attachment.data).digest() == hashlib.sha256(SCAN).digest()
    assert parse_package(signed).attachments[0].data == SCAN


def test_a_scan_over_the_configured_cap_is_refused_before_parsing(signed: bytes) -> None:
    with pytest.raises(PackageRejected) as caught:
        parse_xml(signed, EnvelopeSettings(max_bytes=len(signed) - 1))
    assert caught.value.code == "xml_too_large"


def test_a_large_document_with_a_doctype_is_still_refused() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>'
        + b"x" * (HUGE_TEXT_BYTES + 10)
        + b"&e;</a>"
    )
    with pytest.raises(PackageRejected) as caught:
        parse_xml(data, EnvelopeSettings())
    assert caught.value.code == "xml_forbidden_construct"


def test_a_flood_of_elements_is_refused_before_libxml2_builds_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lxml import etree

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser ran")

    monkeypatch.setattr(etree, "fromstring", no_parse)
    data = b"<a>" + b"<b/>" * 2_000 + b"</a>"
    with pytest.raises(PackageRejected) as caught:
        parse_xml(data, EnvelopeSettings(max_nodes=1_000))
    assert caught.value.code == "xml_too_deep"


def test_deep_nesting_is_refused_in_a_large_document_too() -> None:
    data = b"<a>" * 100 + b"x" * (HUGE_TEXT_BYTES + 10) + b"</a>" * 100
    with pytest.raises(PackageRejected) as caught:
        parse_xml(data, EnvelopeSettings())
    assert caught.value.code == "xml_too_deep"
