"""The national-axis protocol as the façade reads it: timestamps in Vietnam time, the signed
parameters checked one by one against their headers, the reply shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict
from vxpsdk import SdkClient

from gateway.api.vxp_protocol import failure, parse_timestamp, read_signed, reply
from gateway.errors import GatewayError

SYSTEM, SECRET = "000.00.06.H07", "s3cret"


def headers(params: dict[str, str]) -> CIMultiDict[str]:
    """The SDK's headers as the server reads them (names are case-insensitive in HTTP)."""
    sdk = SdkClient("http://unused/vxp", SYSTEM, SECRET, None)  # type: ignore[arg-type]
    return CIMultiDict(sdk.headers(params))


def test_a_timestamp_is_vietnam_local_time_with_milliseconds() -> None:
    at = parse_timestamp("05122026T074112+0123")
    assert at.astimezone(UTC) == datetime(2026, 12, 5, 0, 41, 12, 123000, tzinfo=UTC)
    for bad in ("2026-12-05T07:41:12", "32122026T074112+0000", "05122026T074112"):
        with pytest.raises(GatewayError) as caught:
            parse_timestamp(bad)
        assert caught.value.code == "unauthenticated"


def test_an_sdk_request_verifies_with_its_secret_only() -> None:
    signed = read_signed(headers({"docId": "d-1"}), ("docId",))
    assert (signed.system_id, signed.params["docid"]) == (SYSTEM, "d-1")
    assert signed.matches(SECRET) and not signed.matches("another")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda h: h.pop("XroadVnpt-hash-header"), "send XroadVnpt-sign-header"),
        (lambda h: h.update({"XroadVnpt-docId": "d-2"}), "docid is not the value signed"),
        (lambda h: h.update({"XroadVnpt-sign-header-key": "systemid,docId"}), "does not list"),
        (lambda h: h.update({"XroadVnpt-sign-header": "[1]"}), "not a JSON object"),
    ],
)
def test_a_request_whose_headers_are_not_what_was_signed_is_refused(
    change: object, says: str
) -> None:
    sent = headers({"docId": "d-1"})
    change(sent)  # type: ignore[operator]
    with pytest.raises(GatewayError) as caught:
        read_signed(sent, ("docId",))
    assert caught.value.code == "unauthenticated" and says in caught.value.message


def test_a_parameter_the_call_reads_must_be_signed() -> None:
    sent = headers({})
    sent["XroadVnpt-docId"] = "d-1"  # sent, but outside the signature
    with pytest.raises(GatewayError) as caught:
        read_signed(sent, ("docId",))
    assert "must be signed: docId" in caught.value.message


def test_replies_have_the_protocol_shape() -> None:
    assert reply({"DocId": "p-1"}) == {
        "status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": "p-1"
    }  # fmt: skip
    assert failure("forbidden", "no") == {
        "status": "FAIL",
        "ErrorCode": "forbidden",
        "ErrorDesc": "no",
    }
    assert json.loads(headers({})["XroadVnpt-sign-header"])["systemid"] == SYSTEM
