"""The OpenAPI document is valid OpenAPI 3.1 that a client can be generated from (an
operationId on every operation, every body a component schema, every $ref resolving), its
problems match the error catalogue and the extra members the code really adds, and the checker
the end-to-end tests run every answer through catches what does not conform."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apicheck import Answer, ApiDocument, served_document
from openapi_spec_validator import validate

from gateway.api.schemas import EXTRAS
from gateway.errors import CODES, GatewayError

GATEWAY = Path(__file__).parents[2] / "gateway"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return served_document()


@pytest.fixture(scope="module")
def checker(document: dict[str, Any]) -> ApiDocument:
    return ApiDocument(document)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_document_is_valid_openapi_3_1_and_json(document: dict[str, Any]) -> None:
    validate(document)
    assert json.loads(json.dumps(document)) == document


def test_every_operation_has_a_unique_camel_case_operation_id(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in operations(document)]
    assert all(isinstance(i, str) and re.fullmatch("[a-z]+(?:[A-Z][a-z0-9]*)*", i) for i in ids)
    assert len(ids) == len(set(ids)) == 32 + 18  # the API's and the console's


def test_every_ref_resolves(document: dict[str, Any], checker: ApiDocument) -> None:
    found = set(refs(document))
    assert {"#/components/schemas/Problem", "#/components/responses/Problem"} <= found
    for ref in found:
        assert ref.startswith("#/components/"), ref
        assert checker.resolve({"$ref": ref}) is not None


def test_every_json_body_is_a_component_schema(
    document: dict[str, Any], checker: ApiDocument
) -> None:
    """Client generators name the types after the components: no body is described in place,
    and none is just an object."""
    for method, path, operation in operations(document):
        answers = {status: checker.resolve(r) for status, r in operation["responses"].items()}
        request = operation.get("requestBody", {}).get("content", {})
        for media, content in [
            *((m, c) for answer in answers.values() for m, c in answer["content"].items()),
            *request.items(),
        ]:
            schema = content["schema"]
            if media.endswith("json"):
                named = schema.get("$ref") or schema.get("allOf", [{}])[0].get("$ref")
                assert named and named.startswith("#/components/schemas/"), (method, path, media)
        assert "default" in answers, (method, path)
        # a console form's success is the page it sends the browser to (303)
        success = ("2", "3") if "console" in operation["tags"] else ("2",)
        assert any(s.startswith(success) for s in answers), (method, path)
    assert "{'type': 'object'}" not in str(document["paths"])


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_s_problem_validates_against_its_status_and_no_other(
    code: str, checker: ApiDocument
) -> None:
    status = CODES[code].http_status
    problem = GatewayError(code, "what was wrong", where="line 3").to_problem()
    problem["request_id"] = "4f2a9c01d3b7e655"
    problem |= {name: example for name, example in EXAMPLES.items() if code in EXTRAS[name][0]}
    assert checker.validate(f"components/schemas/Problem{status}", problem) == []
    other = 404 if status != 404 else 400
    assert checker.validate(f"components/schemas/Problem{other}", problem) != []


EXAMPLES = {
    "recipients": ["000.00.99.H07"],
    "package_id": "p-0123456789abcdef01234567",
    "reload": {
        "ok": False,
        "trigger": "api",
        "at": "2026-11-26T08:30:00+00:00",
        "error": "units.csv line 4: duplicate code",
        "units": 0,
        "added": [],
        "removed": [],
        "changed": [],
        "files": {},
        "files_changed": [],
    },
}


def test_an_extra_member_is_allowed_only_with_its_codes(checker: ApiDocument) -> None:
    problem = GatewayError("not_found", "no unit").to_problem() | {"request_id": "r"}
    assert checker.validate("components/schemas/Problem", problem) == []
    errors = checker.validate("components/schemas/Problem", problem | {"recipients": ["x"]})
    assert errors == [
        "code: 'not_found' is not one of ['unknown_recipient', 'recipient_suspended']"
    ]
    errors = checker.validate("components/schemas/Problem", problem | {"retry": 1})
    assert errors == ["(body): Additional properties are not allowed ('retry' was unexpected)"]


def _extra_members() -> set[tuple[str, str]]:
    """(member, code) of every problem the code builds with extra members: Rejected(code, …,
    member=…) and problem(code, …, member=…)."""
    found = set()
    for source in GATEWAY.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.keywords or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            code = node.args[0]
            if name in ("Rejected", "problem") and isinstance(code, ast.Constant):
                assert isinstance(code.value, str), ast.dump(node)
                found |= {(str(k.arg), str(code.value)) for k in node.keywords}
    return found


def test_every_extra_member_the_code_adds_is_documented_with_its_code() -> None:
    found = _extra_members()
    assert {("recipients", "unknown_recipient"), ("reload", "reload_refused")} <= found
    for member, code in found:
        assert member in EXTRAS and code in EXTRAS[member][0], (member, code)


def test_submit_s_problems_require_their_extra_members(
    document: dict[str, Any], checker: ApiDocument
) -> None:
    where = "paths/~1v1~1packages/post/responses/422/content/application~1problem+json/schema"
    problem = GatewayError("unknown_recipient", "no such unit").to_problem() | {"request_id": "r"}
    assert checker.validate(where, problem) == ["(body): 'recipients' is a required property"]
    assert checker.validate(where, problem | {"recipients": ["000.00.99.H07"]}) == []


def answer(
    method: str,
    path: str,
    status: int,
    body: Any,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Answer:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    given = {"x-request-id": "r"} if headers is None else headers
    return Answer(method, "http://127.0.0.1:8080" + path, status, content_type, given, data)


PROBLEM_HEADERS = {"x-request-id": "r", "x-gateway-error": "not_found"}
NOT_FOUND = GatewayError("not_found", "no such thing").to_problem() | {"request_id": "r"}
NOT_ALLOWED = GatewayError("method_not_allowed", "not here").to_problem() | {"request_id": "r"}
BACKLOG = {
    "units": [],
    "totals": {
        "units": 0,
        "waiting": 0,
        "oldest_waiting_seconds": None,
        "retrying": 0,
        "expired": 0,
        "dead": 0,
    },
    "at": "2026-11-26T08:30:00.123456+00:00",
}


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        (answer("GET", "/v1/admin/backlog", 200, BACKLOG), []),
        (
            answer("GET", "/v1/admin/backlog", 200, BACKLOG | {"at": "yesterday"}),
            ["at: 'yesterday' is not a 'date-time'"],
        ),
        (
            answer("GET", "/v1/admin/backlog", 200, BACKLOG, headers={}),
            ["header X-Request-Id is missing"],
        ),
        (
            answer("GET", "/v1/inbox", 200, {"items": [], "next": 7}),
            ["next: 7 is not of type 'string', 'null'"],
        ),
        (
            answer("POST", "/v1/inbox/d-1/ack", 200, {"delivery_id": "d-1", "state": "lost"}),
            [
                "state: 'lost' is not one of ['accepted', 'queued', 'delivered', 'retrying', "
                "'expired', 'dead']"
            ],
        ),
        (
            answer("GET", "/v1/ledger/checkpoint", 200, b"gateway.test\n3\n", "text/plain"),
            [
                "(body): 'gateway.test\\n3\\n' does not match "
                + repr("^[^\\n]+\\n[0-9]+\\n[A-Za-z0-9+/]+=*\\n\\n(\u2014 [^\\n]+\\n)+$")
            ],
        ),
        (
            answer("GET", "/v1/units/X", 404, NOT_FOUND, "application/json", PROBLEM_HEADERS),
            ["content type 'application/json' is not one of application/problem+json"],
        ),
        (
            answer(
                "GET", "/v1/units/X", 404, NOT_FOUND, "application/problem+json", PROBLEM_HEADERS
            ),
            [],
        ),
        (
            answer("GET", "/v1/units/X", 404, NOT_FOUND, "application/problem+json"),
            ["header X-Gateway-Error is missing"],
        ),
        (
            answer("GET", "/v1/inbox", 400, NOT_FOUND, "application/problem+json", PROBLEM_HEADERS),
            [
                "the problem's status 404 is not the answer's",
                "code: 'not_found' is not one of ['bad_request', 'not_edxml', "
                "'xml_forbidden_construct', 'xml_malformed', 'xml_too_deep']",
            ],
        ),
        (
            answer("POST", "/v1/admin/units", 200, {}),
            ["status 200 is not one of 201, 400, 401, 403, 408, 409, 413, 422, 429, default"],
        ),
        (answer("GET", "/v1/elsewhere", 200, {}), ["GET /v1/elsewhere is not in the document"]),
        (
            answer(
                "PUT", "/v1/inbox", 405, NOT_ALLOWED, "application/problem+json", PROBLEM_HEADERS
            ),
            [],
        ),
        (answer("HEAD", "/healthz", 200, b""), []),
        (
            answer("GET", "/v1/inbox/d-1", 200, b"<edXML/>", "application/xml"),
            [
                "header X-Gateway-Delivery-Id is missing",
                "header X-Gateway-Document-Key is missing",
                "header X-Gateway-Signature-State is missing",
                "header X-Gateway-Package-Sha256 is missing",
            ],
        ),
        (
            answer("GET", "/v1/documents/000.00.05.H07%7C12%2FUBND", 200, {}),
            [
                f"(body): '{m}' is a required property"
                for m in (
                    "document_key",
                    "sender",
                    "document_id",
                    "subject",
                    "submitted_at",
                    "ledger_seq",
                    "signature_state",
                    "recipients",
                )
            ],
        ),
    ],
)
def test_the_checker_finds_what_does_not_conform(
    checker: ApiDocument, given: Answer, errors: list[str]
) -> None:
    assert checker.check(given) == errors
