"""The OpenAPI 3.1 description of the HTTP API, served at /v1/openapi.json. A test checks that
it names exactly the routes the application serves."""

from __future__ import annotations

from typing import Any

from gateway.errors import CODES

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _op(
    summary: str,
    *,
    ok: str = "200",
    ok_content: Any = None,
    public: bool = False,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "OK", "content": ok_content or _JSON_OBJECT}}
    for status, description in (extra or {}).items():
        responses[status] = {"description": description, "content": _JSON_OBJECT}
    responses["default"] = _PROBLEM
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if public:
        op["security"] = []
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def _q(name: str, description: str, required: bool = False, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": kind},
    }


def _p(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_XML = {"application/xml": {"schema": {"type": "string", "format": "binary"}}}
_STRING = {"type": "string"}
_UNIT_FIELDS = {
    "code": _STRING,
    "name": _STRING,
    "parent_code": _STRING,
    "level": {"type": "integer", "minimum": 1, "maximum": 4},
    "delivery": {"enum": ["pull", "push", "amqp"]},
    "endpoint": _STRING,
    "status": {"enum": ["active", "suspended"]},
    "cert_sha256": {"type": "array", "items": _STRING},
}


def _json_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


PATHS: dict[str, dict[str, Any]] = {
    "/v1/packages": {
        "post": _op(
            "Submit a signed edXML package or status packet",
            ok="202",
            params=[_q("profile", "strict (default) or compat (operators relaying)")],
            body={"required": True, "content": _XML},
            extra={"200": "The same package again: the original answer"},
        )
    },
    "/v1/inbox": {
        "get": _op(
            "The unit's copies waiting to be fetched (pull delivery)",
            params=[
                _q("limit", "1..500", kind="integer"),
                _q("after", "cursor from next"),
                _q("unit", "operators: another unit's inbox"),
            ],
        )
    },
    "/v1/inbox/{delivery_id}": {
        "get": _op(
            "The package bytes exactly as signed",
            ok_content=_XML,
            params=[_p("delivery_id", "the copy")],
        )
    },
    "/v1/inbox/{delivery_id}/ack": {
        "post": _op(
            "Acknowledge a copy: done, or fail with a reason",
            params=[_p("delivery_id", "the copy")],
            body=_json_body(
                ["result"], {"result": {"enum": ["done", "fail"]}, "reason": {"type": "string"}}
            ),
        )
    },
    "/v1/documents/{document_key}": {
        "get": _op(
            "A document's recipients, transport states and status timelines",
            params=[_p("document_key", "<sender OrganId>|<DocumentId>, URL-encoded")],
        )
    },
    "/v1/ledger/checkpoint": {
        "get": _op(
            "The latest signed checkpoint (C2SP signed note)",
            ok_content={"text/plain": {"schema": {"type": "string"}}},
        ),
        "post": _op(
            "A checkpoint of the ledger as it is now (auditors, operators; a new one at most "
            "every 10 s, else 429 with Retry-After)",
            ok_content={"text/plain": {"schema": {"type": "string"}}},
        ),
    },
    "/v1/ledger/receipts": {
        "get": _op(
            "Offline-verifiable receipts of a document's ledger entries",
            params=[_q("document", "document key", True), _q("recipient", "one recipient")],
        )
    },
    "/v1/ledger/consistency": {
        "get": _op(
            "A consistency proof between two tree sizes",
            params=[
                _q("from", "older size", True, "integer"),
                _q("to", "newer size", True, "integer"),
            ],
        )
    },
    "/v1/ledger/entries": {
        "get": _op(
            "Ledger entries matching the filters, paged",
            ok_content={**_JSON_OBJECT, "text/csv": {"schema": {"type": "string"}}},
            params=[
                _q("document", "document key"),
                _q("unit", "sender or recipient"),
                _q("event", "comma-separated event types"),
                _q("since", "ISO 8601, inclusive"),
                _q("until", "ISO 8601, exclusive"),
                _q("limit", "1..1000", kind="integer"),
                _q("after", "cursor from next"),
                _q("format", "json (default) or csv"),
            ],
        )
    },
    "/v1/units": {"get": _op("The unit directory", params=[_q("parent", "children of a unit")])},
    "/v1/units/{code}": {"get": _op("One unit", params=[_p("code", "OrganId")])},
    "/v1/admin/redrive": {
        "post": _op(
            "Put a unit's dead or expired copies back (operators)",
            body=_json_body(
                ["unit"],
                {
                    "unit": {"type": "string"},
                    "all": {"type": "boolean"},
                    "ids": {"type": "array", "items": {"type": "string"}},
                },
            ),
        )
    },
    "/v1/admin/backlog": {
        "get": _op(
            "What waits to be delivered, per unit, and the totals (operators, auditors)",
            params=[_q("unit", "one unit only")],
        )
    },
    "/v1/admin/reload": {
        "post": _op(
            "Read the directory, trust bundle and CRL again (operators); 422 reload_refused "
            "keeps the current state"
        ),
        "get": _op("The last reload and the count of reloads by result (operators)"),
    },
    "/v1/admin/units": {
        "post": _op(
            "Add a unit to the directory; it takes effect at once (operators)",
            ok="201",
            body=_json_body(["code", "name", "level", "delivery"], _UNIT_FIELDS),
        )
    },
    "/v1/admin/units/{code}": {
        "patch": _op(
            "Change fields of a unit; it takes effect at once (operators)",
            params=[_p("code", "OrganId")],
            body=_json_body([], _UNIT_FIELDS),
        )
    },
    "/v1/admin/units/{code}/suspend": {
        "post": _op(
            "Suspend a unit: it may neither send nor receive (operators)",
            params=[_p("code", "OrganId")],
        )
    },
    "/v1/admin/units/{code}/resume": {
        "post": _op(
            "Make a suspended unit active again (operators)", params=[_p("code", "OrganId")]
        )
    },
    "/v1/admin/tokens/{token_id}/revoke": {
        "post": _op(
            "Revoke a token; refused at once here, by other processes within their token cache "
            "(operators)",
            params=[_p("token_id", "the id part of the token (gw_<id>_...)")],
        )
    },
    "/v1/openapi.json": {"get": _op("This document", public=True)},
    "/healthz": {"get": _op("The process is up", public=True)},
    "/readyz": {
        "get": _op(
            "The database and the bus answer",
            public=True,
            extra={"503": "Something is not reachable"},
        )
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics",
            public=True,
            ok_content={"text/plain": {"schema": {"type": "string"}}},
        )
    },
}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gateway",
            "version": version,
            "description": "Inter-agency edXML document exchange gateway. See docs/api.md.",
        },
        "paths": PATHS,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457) with a catalogue code",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["type", "title", "status", "code", "detail"],
                                "properties": {
                                    "type": {"type": "string"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "detail": {"type": "string"},
                                    "code": {"enum": sorted(CODES)},
                                    "where": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
