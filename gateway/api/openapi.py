"""The OpenAPI 3.1 description of the HTTP API, served at /v1/openapi.json, complete enough to
generate a client from: every operation has an ``operationId``, its parameters, its request
body and each answer's schema (gateway.api.schemas), and names the error statuses it may
answer with, the codes each status carries and the extra members some of them have. Tests
check that it names exactly the routes the application serves, and the end-to-end tests
validate every answer they receive against it."""

from __future__ import annotations

from typing import Any

from gateway.api.exchange import MAX_WAIT_SECONDS
from gateway.api.openapi_console import CONSOLE_PATHS
from gateway.api.problems import PROBLEM_TYPE
from gateway.api.schemas import EXTRAS, SCHEMAS, Schema, integer, ref, text, values
from gateway.errors import CODES
from gateway.service.inbox import LISTED_PACKAGE, LISTED_PAGE

Response = dict[str, Any]

XML = "application/xml"
JSON = "application/json"


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


HEADERS: dict[str, dict[str, Any]] = {
    "RequestId": {
        "description": "The request's id (the caller's X-Request-Id when it is sane); quote it "
        "to an operator",
        "required": True,
        "schema": text(),
    },
    "ErrorCode": {
        "description": "The problem's code, for clients that do not read the body",
        "required": True,
        "schema": values(sorted(CODES)),
    },
    "RetryAfter": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": integer(1),
    },
}


def answer(description: str, content: dict[str, Any], **headers: dict[str, Any]) -> Response:
    """A successful answer: ``content`` by media type, and headers besides X-Request-Id."""
    return {
        "description": description,
        "headers": {"X-Request-Id": _header("RequestId"), **headers},
        "content": content,
    }


def body(name: str, media: str = JSON) -> dict[str, Any]:
    return {media: {"schema": ref(name)}}


STATUSES = sorted({entry.http_status for entry in CODES.values()})


def _problem_answer(description: str, schema: Schema, status: int | None = None) -> Response:
    headers = {"X-Request-Id": _header("RequestId"), "X-Gateway-Error": _header("ErrorCode")}
    if status == 429:
        headers["Retry-After"] = _header("RetryAfter")
    return {
        "description": description,
        "headers": headers,
        "content": {PROBLEM_TYPE: {"schema": schema}},
    }


def problem_components() -> tuple[dict[str, Schema], dict[str, Response]]:
    """The schema and the answer ProblemNNN of each status of the catalogue (a problem with
    that status, so one of the codes that have it), and Problem: any of them."""
    schemas: dict[str, Schema] = {}
    answers = {"Problem": _problem_answer("An error with a catalogue code", ref("Problem"))}
    for status in STATUSES:
        codes = sorted(code for code, entry in CODES.items() if entry.http_status == status)
        narrowed = {"properties": {"code": values(codes)}}
        schemas[f"Problem{status}"] = {"allOf": [ref("Problem"), narrowed]}
        answers[f"Problem{status}"] = _problem_answer(
            f"A problem with status {status}", ref(f"Problem{status}"), status
        )
    return schemas, answers


def problem(status: int, description: str, requires: tuple[str, ...] = ()) -> Response:
    """A problem answer with ``status``; the codes that carry one of the ``requires``
    members have it."""
    if not requires:
        return {"$ref": f"#/components/responses/Problem{status}", "description": description}
    conditions = [
        {"if": {"properties": {"code": values(EXTRAS[member][0])}}, "then": {"required": [member]}}
        for member in requires
    ]
    schema = {"allOf": [ref(f"Problem{status}"), *conditions]}
    return _problem_answer(description, schema, status)


# Answers every route may give: another status with a problem (unexpected failures, 503 while
# the gateway is starting, 405 for another method); and, behind a token, 401 and 429.
ANY_PROBLEM = "#/components/responses/Problem"
BEARER_ERRORS = {
    401: "No valid bearer token (missing, unknown, expired or revoked)",
    429: "Over the token's rate limit; Retry-After says when to try again",
}


def op(
    operation_id: str,
    tag: str,
    summary: str,
    ok: dict[int, Response],
    *,
    errors: dict[int, str] | None = None,
    requires: dict[int, tuple[str, ...]] | None = None,
    public: bool = False,
    params: list[dict[str, Any]] | None = None,
    request: dict[str, Any] | None = None,
) -> dict[str, Any]:
    described = {**({} if public else BEARER_ERRORS), **(errors or {})}
    responses: dict[str, Any] = {str(status): r for status, r in ok.items()}
    for status, description in sorted(described.items()):
        responses[str(status)] = problem(status, description, (requires or {}).get(status, ()))
    responses["default"] = {"$ref": ANY_PROBLEM}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": responses,
    }
    if public:
        operation["security"] = []
    if params:
        operation["parameters"] = params
    if request:
        operation["requestBody"] = {"required": True, "content": request}
    return operation


def query(
    name: str, description: str, schema: Schema | None = None, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or text(),
    }


def path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": text(),
    }


DELIVERY = path("delivery_id", "the copy")
UNIT_CODE = path("code", "OrganId")
LIMIT_INBOX = query("limit", "items on a page (default 50)", integer(1, maximum=500))
CHECKPOINT = {"text/plain": {"schema": ref("Checkpoint")}}
SIGNED = {XML: {"schema": {"type": "string", "format": "binary"}}}
INBOX_HEADERS = {
    f"X-Gateway-{name}": {"description": description, "required": True, "schema": text()}
    for name, description in (
        ("Delivery-Id", "the copy"),
        ("Document-Key", "the document"),
        ("Signature-State", "what the gateway knows of the signature"),
        ("Package-Sha256", "SHA-256 of the bytes"),
    )
}
NEXT_AFTER = {
    "description": "The cursor of the next page (CSV only; absent on the last page)",
    "schema": text(),
}

BODY_LATE = "The body did not arrive within GATEWAY_API_BODY_TIMEOUT seconds"
JSON_TOO_LARGE = "The JSON body is over 1 MiB"

PATHS: dict[str, dict[str, Any]] = {
    "/v1/packages": {
        "post": op(
            "submitPackage",
            "exchange",
            "Submit a signed edXML package or status packet",
            {
                202: answer("Accepted: in the ledger, copies queued", body("SubmissionAnswer")),
                200: answer(
                    "The same bytes again: the first answer, with current states",
                    body("SubmissionAnswer"),
                ),
            },
            params=[
                query(
                    "profile",
                    "strict (default); compat for operators relaying legacy packets",
                    values(("strict", "compat")),
                ),
                {
                    "name": "X-Gateway-Acknowledgement",
                    "in": "header",
                    "required": False,
                    "description": "with an AMQP unit's first status packet: its signed "
                    "statement of reception of the copy (compact JWS, docs/evidence.md)",
                    "schema": text(),
                },
            ],
            request=SIGNED,
            errors={
                400: "Not well-formed XML, not edXML, or a bad profile",
                403: "From is not the token's unit; auditors; compat for a non-operator; "
                "strict for an operator",
                408: BODY_LATE,
                409: "The DocumentId was sent before with other content (package_id names it)",
                413: "Larger than the size limit",
                415: "Not sent as application/xml (or text/xml, application/octet-stream)",
                429: "The token, or the gateway, has too many packages in flight; Retry-After",
                422: "Refused by the schema, signature, certificate, sender, routing or "
                "workflow checks (unknown or suspended recipients are listed in recipients), "
                "or an acknowledgement that does not verify (ack_invalid) or is required",
            },
            requires={409: ("package_id",), 422: ("recipients",)},
        )
    },
    "/v1/inbox": {
        "get": op(
            "listInbox",
            "exchange",
            "The unit's copies waiting to be fetched (pull delivery), oldest first",
            {200: answer("One page", body("InboxPage"))},
            params=[
                LIMIT_INBOX,
                query("after", "the cursor from next"),
                query("unit", "operators: another unit's inbox"),
                query(
                    "wait",
                    "seconds to wait for a copy when there is none (a long poll; default 0): "
                    "the answer comes as soon as one is placed, or empty when the time is up",
                    integer(0, maximum=MAX_WAIT_SECONDS),
                ),
                query(
                    "include",
                    "package: each item carries its package's bytes (base64), saving a fetch "
                    f"a copy: packages up to {LISTED_PACKAGE >> 20} MiB, "
                    f"{LISTED_PAGE >> 20} MiB a page in all; the others are null, to be fetched",
                    {"enum": ["package"]},
                ),
            ],
            errors={
                400: "limit, after, wait or include is not valid",
                403: "Another unit's inbox, or an auditor's token",
            },
        )
    },
    "/v1/inbox/{delivery_id}": {
        "get": op(
            "fetchInboxItem",
            "exchange",
            "The package bytes exactly as signed",
            {200: answer("The package", SIGNED, **INBOX_HEADERS)},
            params=[DELIVERY],
            errors={403: "An auditor's token", 404: "No such copy, or one for another unit"},
        )
    },
    "/v1/deliveries/{delivery_id}/body": {
        "get": op(
            "fetchDeliveryBody",
            "exchange",
            "The package bytes of a copy an AMQP unit received as a claim (gw-claim), for that "
            "unit only, while the copy is live",
            {200: answer("The package", SIGNED, **INBOX_HEADERS)},
            params=[DELIVERY],
            errors={
                403: "An operator's or auditor's token",
                404: "No such copy, one for another unit, or one not for an AMQP unit",
                410: "The copy is delivered, expired or dead",
            },
        )
    },
    "/v1/inbox/{delivery_id}/ack": {
        "post": op(
            "acknowledgeInboxItem",
            "exchange",
            "Acknowledge a copy: done, or fail with a reason (offered again, up to the limit)",
            {200: answer("The copy's transport state now", body("AckAnswer"))},
            params=[DELIVERY],
            request=body("Ack"),
            errors={
                400: "The body is not an acknowledgement",
                403: "Not a unit's token",
                404: "No such copy, or one for another unit",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
                422: "The signed acknowledgement does not verify or names another copy "
                "(ack_invalid, cert_*), or the unit must sign (ack_signature_required)",
            },
        )
    },
    "/v1/inbox/ack": {
        "post": op(
            "acknowledgeInboxItems",
            "exchange",
            "Acknowledge several copies at once, each as acknowledgeInboxItem would; each is "
            "answered on its own, in the order given",
            {200: answer("Each copy's transport state now, or its problem", body("AckAllAnswer"))},
            request=body("AckAll"),
            errors={
                400: "The body is not a list of 1 to 500 acknowledgements",
                403: "Not a unit's token",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
            },
        )
    },
    "/v1/notices": {
        "get": op(
            "listNotices",
            "exchange",
            "The sender's transport notices not yet acknowledged: copies that expired, were "
            "dead-lettered or redriven",
            {200: answer("One page", body("NoticePage"))},
            params=[
                LIMIT_INBOX,
                query("after", "the cursor from next"),
                query("unit", "operators: another unit's notices"),
            ],
            errors={
                400: "limit or after is not valid",
                403: "Another unit's notices, or an auditor's token",
            },
        )
    },
    "/v1/notices/ack": {
        "post": op(
            "acknowledgeNotices",
            "exchange",
            "The unit has these notices (ledgered as notified); others' ids are ignored",
            {200: answer("How many were newly acknowledged", body("NoticeAckAnswer"))},
            request=body("NoticeAck"),
            errors={
                400: "ids is not a list of at most 500 strings",
                403: "Not a unit's token",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
            },
        )
    },
    "/v1/documents/{document_key}": {
        "get": op(
            "getDocument",
            "exchange",
            "A document's recipients, transport states and status timelines",
            {200: answer("The document", body("DocumentView"))},
            params=[path("document_key", "<sender OrganId>|<DocumentId>, URL-encoded")],
            errors={404: "No such document, or one the token's unit neither sent nor received"},
        )
    },
    "/v1/ledger/checkpoint": {
        "get": op(
            "getCheckpoint",
            "ledger",
            "The latest signed checkpoint (C2SP signed note)",
            {200: answer("The checkpoint", CHECKPOINT)},
        ),
        "post": op(
            "createCheckpoint",
            "ledger",
            "A checkpoint of the ledger as it is now (auditors, operators)",
            {200: answer("The checkpoint", CHECKPOINT)},
            errors={
                403: "Not an auditor or operator",
                429: "A new checkpoint was signed less than 10 s ago; Retry-After says when",
            },
        ),
    },
    "/v1/ledger/receipts": {
        "get": op(
            "getReceipts",
            "ledger",
            "Offline-verifiable receipts of a document's ledger entries",
            {200: answer("The receipts", body("Receipts"))},
            params=[
                query("document", "the document key", required=True),
                query("recipient", "one recipient's entries only"),
            ],
            errors={
                400: "No document given",
                404: "No such document, one the token's unit neither sent nor received, or "
                "a recipient that was not one",
            },
        )
    },
    "/v1/ledger/cosignatures": {
        "post": op(
            "postCosignature",
            "ledger",
            "A witness's cosignature of one of the gateway's checkpoints (auditors, operators)",
            {201: answer("Kept with the checkpoint", body("CosignatureAnswer"))},
            request=body("Cosignature"),
            errors={
                400: "The body is not a checkpoint and a cosignature line",
                403: "Not an auditor or operator",
                404: "The gateway signed no such checkpoint",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
                422: "The witness is not configured (witness_unknown) or the cosignature does "
                "not verify (proof_invalid)",
            },
        )
    },
    "/v1/ledger/bundles/{document_key}": {
        "get": op(
            "getEvidenceBundle",
            "ledger",
            "The letter's evidence bundle: a zip checked offline by gateway audit verify-bundle",
            {
                200: answer(
                    "The bundle (docs/evidence.md)",
                    {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                )
            },
            params=[path("document_key", "<sender OrganId>|<DocumentId>, URL-encoded")],
            errors={404: "No such document, or one the token's unit neither sent nor received"},
        )
    },
    "/v1/ledger/consistency": {
        "get": op(
            "getConsistencyProof",
            "ledger",
            "A consistency proof between two tree sizes (auditors, operators)",
            {200: answer("The proof", body("ConsistencyProof"))},
            params=[
                query("from", "the older size", integer(1), required=True),
                query("to", "the newer size", integer(1), required=True),
            ],
            errors={400: "Not 0 < from <= to <= the ledger's size", 403: "A unit's token"},
        )
    },
    "/v1/ledger/entries": {
        "get": op(
            "listLedgerEntries",
            "ledger",
            "Ledger entries matching the filters, paged (a unit's token: its own entries)",
            {
                200: answer(
                    "One page, as JSON or as CSV (a header row; details as a JSON column)",
                    {**body("LedgerEntryPage"), "text/csv": {"schema": text()}},
                    **{"X-Next-After": NEXT_AFTER},
                )
            },
            params=[
                query("document", "the document key"),
                query("unit", "sender or recipient"),
                query("event", "event types, comma-separated"),
                query("since", "ISO 8601, inclusive"),
                query("until", "ISO 8601, exclusive"),
                query("limit", "entries on a page (default 100)", integer(1, maximum=1000)),
                query("after", "the cursor from next", integer()),
                query("format", "json (default) or csv", values(("json", "csv"))),
            ],
            errors={400: "A filter is not valid", 403: "A unit's token asking for another unit"},
        )
    },
    "/v1/units": {
        "get": op(
            "listUnits",
            "directory",
            "The unit directory",
            {200: answer("The units, in directory order", body("UnitList"))},
            params=[query("parent", "only the children of this unit")],
        )
    },
    "/v1/units/{code}": {
        "get": op(
            "getUnit",
            "directory",
            "One unit",
            {200: answer("The unit", body("Unit"))},
            params=[UNIT_CODE],
            errors={404: "No such unit"},
        )
    },
    "/v1/admin/redrive": {
        "post": op(
            "redriveCopies",
            "admin",
            "Put a unit's dead or expired copies back (operators)",
            {200: answer("How many were put back", body("RedriveAnswer"))},
            request=body("Redrive"),
            errors={
                400: "No such unit, or neither ids nor all",
                403: "Not an operator",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
            },
        )
    },
    "/v1/admin/backlog": {
        "get": op(
            "getBacklog",
            "admin",
            "What waits to be delivered, per unit, and the totals (operators, auditors)",
            {200: answer("The backlog", body("Backlog"))},
            params=[query("unit", "one unit only")],
            errors={403: "A unit's token", 404: "No such unit"},
        )
    },
    "/v1/alerts": {
        "get": op(
            "getAlerts",
            "admin",
            "What needs looking at now: push endpoints failing, copies waiting too long, dead "
            "letters, certificates expiring, an old checkpoint (operators, auditors; the "
            "thresholds are the GATEWAY_ALERTS_* settings)",
            {200: answer("The alerts, none when all is well", body("Alerts"))},
            errors={403: "A unit's token"},
        )
    },
    "/v1/admin/reload": {
        "post": op(
            "reloadSources",
            "admin",
            "Read the directory, trust bundle and CRL again (operators)",
            {200: answer("What the reload changed", body("ReloadResult"))},
            errors={
                403: "Not an operator",
                422: "A file did not pass its checks; nothing changed (reload says why)",
            },
            requires={422: ("reload",)},
        ),
        "get": op(
            "getReloadState",
            "admin",
            "The last reload and the count of reloads by result (operators)",
            {200: answer("The last reload", body("ReloadState"))},
            errors={403: "Not an operator"},
        ),
    },
    "/v1/admin/units": {
        "post": op(
            "addUnit",
            "admin",
            "Add a unit to the directory; it takes effect at once (operators)",
            {201: answer("The unit added", body("UnitChanged"))},
            request=body("NewUnit"),
            errors={
                400: "Not a unit's fields",
                403: "Not an operator",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
                409: "The unit is already in the directory",
                422: "The directory would not pass its checks",
            },
        )
    },
    "/v1/admin/units/{code}": {
        "patch": op(
            "updateUnit",
            "admin",
            "Change fields of a unit; it takes effect at once (operators)",
            {200: answer("The unit changed", body("UnitChanged"))},
            params=[UNIT_CODE],
            request=body("UnitFields"),
            errors={
                400: "Not a unit's fields",
                403: "Not an operator",
                408: BODY_LATE,
                413: JSON_TOO_LARGE,
                404: "No such unit",
                422: "The directory would not pass its checks",
            },
        )
    },
    **{
        f"/v1/admin/units/{{code}}/{action}": {
            "post": op(
                f"{action}Unit",
                "admin",
                summary,
                {200: answer("The unit changed", body("UnitChanged"))},
                params=[UNIT_CODE],
                errors={403: "Not an operator", 404: "No such unit"},
            )
        }
        for action, summary in (
            ("suspend", "Suspend a unit: it may neither send nor receive (operators)"),
            ("resume", "Make a suspended unit active again (operators)"),
        )
    },
    "/v1/admin/tokens/{token_id}/revoke": {
        "post": op(
            "revokeToken",
            "admin",
            "Revoke a token: refused at once here, by other processes within their token cache "
            "(operators)",
            {200: answer("How many were revoked", body("TokenRevoked"))},
            params=[path("token_id", "the id part of the token (gw_<id>_...)")],
            errors={403: "Not an operator"},
        )
    },
    "/v1/openapi.json": {
        "get": op(
            "getOpenApiDocument",
            "probes",
            "This document",
            {200: answer("OpenAPI 3.1", body("OpenApiDocument"))},
            public=True,
        )
    },
    "/healthz": {
        "get": op(
            "getHealth",
            "probes",
            "The process is up",
            {200: answer("Up", body("Health"))},
            public=True,
        )
    },
    "/readyz": {
        "get": op(
            "getReadiness",
            "probes",
            "The database and the bus answer",
            {
                200: answer("Ready", body("Readiness")),
                503: answer("Starting, or something does not answer", body("Readiness")),
            },
            public=True,
        )
    },
    "/metrics": {
        "get": op(
            "getMetrics",
            "probes",
            "Prometheus metrics",
            {200: answer("The text exposition format", {"text/plain": {"schema": text()}})},
            public=True,
        )
    },
}

TAGS = [
    {"name": "exchange", "description": "Submitting packages, the pull inbox, documents"},
    {"name": "ledger", "description": "Checkpoints, receipts, proofs and entries"},
    {"name": "directory", "description": "The unit directory"},
    {"name": "admin", "description": "Operators' actions and views"},
    {"name": "probes", "description": "Health, readiness, metrics and this document"},
    {"name": "console", "description": "The operators' and auditors' pages (docs/console.md)"},
]


def openapi_document(version: str) -> dict[str, Any]:
    problem_schemas, problem_answers = problem_components()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gateway",
            "version": version,
            "description": "Inter-agency edXML document exchange gateway. Errors are RFC 9457 "
            "problem details whose code is from the error catalogue. See docs/api.md.",
        },
        "tags": TAGS,
        "paths": PATHS | CONSOLE_PATHS,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "console": {"type": "apiKey", "in": "cookie", "name": "gw_console"},
            },
            "schemas": SCHEMAS | problem_schemas,
            "headers": HEADERS,
            "responses": problem_answers,
        },
    }
