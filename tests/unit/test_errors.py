"""The error catalogue: stable codes, categories, HTTP statuses, problem details."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from gateway.errors import CODES, CodeName, GatewayError, PackageRejected, lookup

REQUIRED = (
    "xml_too_large",
    "xml_malformed",
    "xml_forbidden_construct",
    "xml_too_deep",
    "schema_invalid",
    "attachment_missing",
    "attachment_unreferenced",
    "attachment_bad_encoding",
    "organ_id_invalid",
    "document_id_invalid",
    "recipient_missing",
    "recipient_duplicate",
    "status_code_unknown",
    "signature_missing",
    "not_edxml",
    "signature_invalid",
    "signature_weak_algorithm",
    "signature_ambiguous",
    "cert_untrusted",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_revoked",
    "cert_usage_invalid",
    "sender_mismatch",
    "sender_unknown",
    "sender_suspended",
    "duplicate_conflict",
    "status_out_of_order",
    "status_not_recipient",
    "recall_not_sender",
    "business_target_unknown",
)


def test_every_required_code_is_in_the_catalogue() -> None:
    assert set(REQUIRED) <= set(CODES)


def test_codes_are_snake_case_with_a_title_and_an_http_status() -> None:
    for code, entry in CODES.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code)
        assert entry.code == code and entry.title
        assert 400 <= entry.http_status < 600


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        lookup("no_such_code")
    with pytest.raises(KeyError):
        GatewayError("no_such_code", "x")


def test_problem_details_carry_the_code() -> None:
    error = PackageRejected("duplicate_conflict", "sent before", where="line 3")
    assert error.to_problem() == {
        "type": "urn:gateway:error:duplicate_conflict",
        "title": CODES["duplicate_conflict"].title,
        "status": 409,
        "code": "duplicate_conflict",
        "detail": "sent before",
        "where": "line 3",
    }


def test_the_code_type_names_exactly_the_catalogue() -> None:
    """mypy refuses a code outside ``CodeName``; the type and the catalogue must agree."""
    assert set(get_args(CodeName)) == set(CODES)
    assert len(get_args(CodeName)) == len(CODES)
