"""The console's routes in the OpenAPI document: HTML pages and forms for a browser, signed in
with the session cookie (not a bearer token). Every page answers HTML, also when it refuses
(a 4xx page saying why); forms answer 303 to the page that shows their result."""

from __future__ import annotations

from typing import Any

HTML = {"text/html": {"schema": {"type": "string"}}}
REQUEST_ID = {"$ref": "#/components/headers/RequestId"}
ANY_PROBLEM = {"$ref": "#/components/responses/Problem"}
SEE_OTHER = {
    "description": "Done, or not signed in: go to Location",
    "content": {},
    "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
}
FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "required": ["csrf"],
            "properties": {"csrf": {"type": "string", "description": "the session's CSRF secret"}},
        }
    }
}


def _op(
    operation_id: str,
    summary: str,
    ok: dict[str, Any] | None = None,
    *,
    params: list[dict[str, Any]] | None = None,
    form: bool = False,
    public: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if ok is not None:
        responses["200"] = {
            "description": "The page",
            "headers": {"X-Request-Id": REQUEST_ID},
            "content": ok,
        }
    responses["303"] = SEE_OTHER
    responses["4XX"] = {
        "description": "Refused: a page saying why (403: an auditor's form, a unit's token, "
        "a missing or stale CSRF secret)",
        "content": HTML,
    }
    responses["default"] = ANY_PROBLEM
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": ["console"],
        "summary": summary,
        "responses": responses,
        "security": [] if public else [{"console": []}],
    }
    if params:
        operation["parameters"] = params
    if form:
        operation["requestBody"] = {"required": True, "content": FORM}
    return operation


def _q(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


CONSOLE_PATHS: dict[str, Any] = {
    "/login": {
        "get": _op("consoleLoginPage", "The sign-in form", HTML, public=True),
        "post": _op(
            "consoleLogin", "Sign in with a token (form field token)", HTML, form=True, public=True
        ),
    },
    "/logout": {"post": _op("consoleLogout", "Sign out", form=True)},
    "/lang": {
        "post": _op("consoleLanguage", "Choose vi or en (form field lang)", form=True, public=True)
    },
    "/": {"get": _op("consoleOverview", "The overview: activity, backlog, alerts", HTML)},
    "/documents": {
        "get": _op(
            "consoleDocuments",
            "Search documents, newest first, a page at a time",
            HTML,
            params=[
                _q("q", "a DocumentId, or words of the subject"),
                _q("sender", "the sender's OrganId"),
                _q("recipient", "a recipient's OrganId"),
                _q("state", "a copy's transport state"),
                _q("since", "from this day (YYYY-MM-DD, Asia/Ho_Chi_Minh)"),
                _q("until", "to this day, inclusive"),
                _q("before", "the next page: the ledger_seq the last page ended at"),
                _q("limit", "documents a page, 1..500 (50)"),
            ],
        )
    },
    "/documents/{key}": {
        "get": _op(
            "consoleDocument",
            "A document and each recipient's timeline",
            HTML,
            params=[_path("key")],
        )
    },
    "/documents/{key}/attachments/{index}": {
        "get": _op(
            "consoleAttachment",
            "An attachment's content to download (operators)",
            {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            params=[_path("key"), _path("index")],
        )
    },
    "/dead": {
        "get": _op(
            "consoleDead",
            "Dead and expired copies per unit",
            HTML,
            params=[_q("unit", "one unit only")],
        )
    },
    "/dead/redrive": {
        "post": _op(
            "consoleRedrive",
            "Redrive copies: a confirmation page, then the redrive (operators)",
            HTML,
            form=True,
        )
    },
    "/units": {
        "get": _op(
            "consoleUnits",
            "The directory with each unit's health and backlog",
            HTML,
            params=[_q("q", "a code or words of the name")],
        ),
        "post": _op("consoleAddUnit", "Add a unit (operators)", form=True),
    },
    "/units/{code}/suspend": {
        "post": _op(
            "consoleSuspendUnit", "Suspend a unit (operators)", form=True, params=[_path("code")]
        )
    },
    "/units/{code}/resume": {
        "post": _op(
            "consoleResumeUnit", "Resume a unit (operators)", form=True, params=[_path("code")]
        )
    },
    "/ledger": {
        "get": _op(
            "consoleLedger",
            "The ledger: size, checkpoint, verification, exports",
            HTML,
            params=[_q("seq", "show this entry")],
        )
    },
    "/ledger/verify": {
        "post": _op("consoleVerifyLedger", "Verify the whole ledger in the background", form=True)
    },
    "/ledger/export": {
        "get": _op(
            "consoleExport",
            "An audit query's entries to download (format csv or json; X-Next-After for more)",
            {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/LedgerEntryPage"}},
            },
            params=[
                _q("unit", "sender or recipient"),
                _q("document", "a document key"),
                _q("event", "event types, comma-separated"),
                _q("since", "ISO 8601 time"),
                _q("until", "ISO 8601 time"),
                _q("format", "csv or json"),
                _q("limit", "entries per file, 1..10000"),
                _q("after", "the X-Next-After of the previous file"),
            ],
        )
    },
    "/ledger/receipt": {
        "get": _op(
            "consoleReceipt",
            "A receipt to download and check offline (gateway audit verify-receipt)",
            {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}},
            params=[
                _q("seq", "one entry"),
                _q("document", "a document key"),
                _q("recipient", "with document: its entries for this recipient"),
            ],
        )
    },
}
