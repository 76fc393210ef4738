"""The JSON shapes of the HTTP API as JSON Schema (2020-12), for the OpenAPI document's
``components/schemas``. Each one is written from what the handler sends (gateway.api.*,
gateway.service.views, the ledger's receipts); enumerations come from the code's own enums, so
a new transport state or error code reaches the document by itself. Objects are closed
(``additionalProperties: false``): a member the document does not name is a difference the
end-to-end tests report."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.directory.model import DeliveryMode, UnitStatus
from gateway.envelope.model import STATUS_CODES, Kind
from gateway.errors import CODES
from gateway.ledger.entry import FORMAT_VERSION, EventType
from gateway.ledger.receipt import FORMAT as RECEIPT_FORMAT
from gateway.service.transport import Transport
from gateway.trust import SignatureState

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null."""
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def closed(properties: dict[str, Schema], optional: Iterable[str] = (), **more: Any) -> Schema:
    """An object with exactly these members, every one required but the ``optional`` ones."""
    left_out = set(optional)
    return {
        "type": "object",
        "required": [name for name in properties if name not in left_out],
        "properties": properties,
        "additionalProperties": False,
        **more,
    }


def values(enum: Iterable[Any]) -> Schema:
    return {"enum": [str(v) for v in enum]}


def text(description: str | None = None, **more: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **more}


def integer(minimum: int = 0, **more: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, **more}


def array(items: Schema, **more: Any) -> Schema:
    return {"type": "array", "items": items, **more}


TIME = text(format="date-time")
BASE64 = text(contentEncoding="base64")
SHA256 = text("lower-case hex SHA-256", pattern="^[0-9a-f]{64}$")
ORGAN_ID = text("OrganId (NNN.NN.NN.Lnn)", pattern=r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$")
DOCUMENT_KEY = text("<sender OrganId>|<DocumentId>")
DELIVERY_ID = text("one copy of a package for one recipient", pattern="^d-")
STATUS_CODE = {**values(STATUS_CODES), "description": "QCVN 102 status code"}
TRANSPORT = {**values(Transport), "description": "where the copy is on its way"}
SIGNATURE_STATE = {
    **values(SignatureState),
    "description": "valid in the strict profile; the others only for packets relayed in compat",
}
CURSOR = nullable(text("give it as after= for the next page; null on the last page"))

# One acknowledgement of a copy in an inbox (POST /v1/inbox/{delivery_id}/ack, /v1/inbox/ack).
ACK: dict[str, Schema] = {
    "result": values(("done", "fail")),
    "reason": nullable(text("why it failed")),
    "acknowledgement": text(
        "with done: the signed statement of reception, a compact JWS "
        "(ES256, ES384 or RS256; see docs/evidence.md)"
    ),
}

# Problem members beyond RFC 9457's, each sent only with these codes.
EXTRAS: dict[str, tuple[tuple[str, ...], Schema]] = {
    "recipients": (
        ("unknown_recipient", "recipient_suspended"),
        array(text(), minItems=1, description="the recipients at fault; nothing was queued"),
    ),
    "package_id": (
        ("duplicate_conflict",),
        text("the package that was sent before with this DocumentId and other content"),
    ),
    "reload": (("reload_refused",), {**ref("ReloadResult"), "description": "the refused reload"}),
}


def _problem() -> Schema:
    members: dict[str, Schema] = {
        "type": text("urn:gateway:error:<code>", pattern="^urn:gateway:error:[a-z_]+$"),
        "title": text("the catalogue title of the code"),
        "status": integer(400, maximum=599, description="the HTTP status"),
        "code": {**values(sorted(CODES)), "description": "the error catalogue code; branch on it"},
        "detail": text("what was wrong, for a person"),
        "where": text("where in the package (a line, an element path), when known"),
        "request_id": text("quote it to an operator: it is on every log line of the request"),
    }
    members |= {name: schema for name, (_, schema) in EXTRAS.items()}
    only_with = {
        name: {"properties": {"code": values(codes)}} for name, (codes, _) in EXTRAS.items()
    }
    return closed(
        members,
        optional=("where", *EXTRAS),
        dependentSchemas=only_with,
        description="An error (RFC 9457 problem details) with a code of the error catalogue",
    )


def _ledger_entry(time: Schema, **first: Schema) -> Schema:
    """A ledger entry with its time as ``time`` says; ``first`` goes before its members."""
    return closed(
        {
            **first,
            "seq": integer(),
            "time": time,
            "type": values(EventType),
            "document": nullable(DOCUMENT_KEY),
            "sender": nullable(text()),
            "recipient": nullable(text()),
            "package_sha256": nullable(SHA256),
            "code": nullable(text("a status code (01..16), an error code or an operator action")),
            "details": {"type": "object", "description": "small facts about the event"},
        }
    )


def _reload_result() -> Schema:
    names = text(description="a unit code")
    return closed(
        {
            "ok": {"type": "boolean"},
            "trigger": {**values(("api", "signal", "file", "cli")), "description": "who asked"},
            "at": TIME,
            "error": nullable(text("why nothing changed")),
            "units": integer(description="units in the directory now"),
            "added": array(names),
            "removed": array(names),
            "changed": array(names),
            "files": {
                "type": "object",
                "description": "the SHA-256 of each file loaded (directory, trust, crl)",
                "additionalProperties": SHA256,
            },
            "files_changed": array(text(), description="the files whose content differs"),
        }
    )


def _unit() -> Schema:
    return closed(
        {
            "code": ORGAN_ID,
            "name": text(),
            "parent_code": nullable(ORGAN_ID),
            "level": integer(1, maximum=4),
            "delivery": values(DeliveryMode),
            "endpoint": nullable(text("the webhook of a push unit")),
            "status": values(UnitStatus),
            "cert_sha256": array(SHA256, description="pinned signer certificates"),
        }
    )


def _unit_fields(required: tuple[str, ...]) -> Schema:
    """A unit's fields as a request gives them (as the directory file writes them)."""
    fields: dict[str, Schema] = {
        "code": ORGAN_ID,
        "name": text(),
        "parent_code": nullable(ORGAN_ID),
        "level": {"anyOf": [integer(1, maximum=4), values(("1", "2", "3", "4"))]},
        "delivery": values(DeliveryMode),
        "endpoint": nullable(text("the webhook of a push unit")),
        "status": values(UnitStatus),
        "cert_sha256": {
            "anyOf": [array(SHA256), nullable(text("fingerprints separated by ;"))],
        },
    }
    if "code" not in required:
        del fields["code"]  # the code is in the path
    schema = closed(fields, optional=set(fields) - set(required))
    return schema if required else {**schema, "minProperties": 1}


def _backlog_row() -> Schema:
    return closed(
        {
            "unit": text(),
            "name": nullable(text()),
            "delivery": nullable(values(DeliveryMode)),
            "waiting": integer(description="copies not delivered (retrying ones included)"),
            "oldest_waiting_at": nullable(TIME),
            "oldest_waiting_seconds": nullable(integer()),
            "retrying": integer(),
            "expired": integer(),
            "dead": integer(),
            "last_delivered_at": nullable(TIME),
            "last_failure": nullable(closed({"at": TIME, "reason": nullable(text())})),
        },
        optional=("last_delivered_at", "last_failure"),  # push units only
    )


SCHEMAS: dict[str, Schema] = {
    "Problem": _problem(),
    "SubmissionAnswer": closed(
        {
            "package_id": text(pattern="^p-"),
            "kind": values(Kind),
            "document_key": DOCUMENT_KEY,
            "recipients": array(
                closed({"code": text(), "state": TRANSPORT, "delivery_id": DELIVERY_ID})
            ),
            "ledger_seq": integer(),
            "signature_state": SIGNATURE_STATE,
            "status": {**STATUS_CODE, "description": "a status packet's code"},
        },
        optional=("status",),
    ),
    "InboxItem": closed(
        {
            "delivery_id": DELIVERY_ID,
            "package_id": text(pattern="^p-"),
            "kind": values(Kind),
            "document_key": DOCUMENT_KEY,
            "sender": text(),
            "status": nullable(STATUS_CODE),
            "subject": nullable(text()),
            "size": integer(description="bytes"),
            "signature_state": SIGNATURE_STATE,
            "queued_at": TIME,
            "attempt": integer(1),
            "package": nullable(
                text(
                    "with include=package: the package's bytes exactly as signed, base64; "
                    "null: fetch this copy on its own (GET /v1/inbox/{delivery_id})",
                    contentEncoding="base64",
                )
            ),
        },
        optional=("package",),
    ),
    "InboxPage": closed({"items": array(ref("InboxItem")), "next": CURSOR}),
    "Ack": {"type": "object", "required": ["result"], "properties": ACK},
    "AckAnswer": closed({"delivery_id": text(), "state": TRANSPORT}),
    "AckAll": closed(
        {
            "acks": array(
                {
                    "type": "object",
                    "required": ["delivery_id", "result"],
                    "properties": {"delivery_id": text(), **ACK},
                },
                minItems=1,
                maxItems=500,
            )
        }
    ),
    "AckAllAnswer": closed(
        {
            "results": array(
                {
                    "oneOf": [
                        ref("AckAnswer"),
                        closed(
                            {"delivery_id": text(), "problem": ref("Problem")},
                            description="This acknowledgement was refused; the others stand",
                        ),
                    ]
                },
                description="One per acknowledgement, in the order given",
            )
        }
    ),
    "Notice": closed(
        {
            "notice_id": text(pattern="^n-"),
            "event": values(("expired", "dead_lettered", "redriven")),
            "delivery_id": DELIVERY_ID,
            "document_key": DOCUMENT_KEY,
            "recipient": ORGAN_ID,
            "reason": nullable(text()),
            "at": TIME,
        },
        description="One of the sender's copies expired, was dead-lettered or redriven",
    ),
    "NoticePage": closed({"notices": array(ref("Notice")), "next": CURSOR}),
    "NoticeAck": closed({"ids": array(text(pattern="^n-"), maxItems=500)}),
    "NoticeAckAnswer": closed({"acknowledged": integer()}),
    "DocumentView": closed(
        {
            "document_key": DOCUMENT_KEY,
            "sender": text(),
            "document_id": text(),
            "subject": nullable(text()),
            "submitted_at": TIME,
            "ledger_seq": integer(),
            "signature_state": SIGNATURE_STATE,
            "recipients": array(ref("DocumentRecipient")),
        }
    ),
    "DocumentRecipient": closed(
        {
            "code": text(),
            "delivery_id": nullable(DELIVERY_ID),
            "transport": nullable(TRANSPORT),
            "transport_at": nullable(TIME),
            "reason": nullable(text("why the last attempt failed")),
            "business": nullable(text("the last business status (01..06)")),
            "statuses": array(
                closed({"code": STATUS_CODE, "at": TIME, "ledger_seq": integer()}),
                description="the recipient's statuses, and the sender's recalls to it",
            ),
            "recall": nullable(values(("13", "15", "16"))),
        }
    ),
    "LedgerEntry": _ledger_entry(TIME),
    "LedgerEntryPage": closed({"entries": array(ref("LedgerEntry")), "next": CURSOR}),
    # The entry of a receipt, as its canonical bytes have it (the time in the one canonical form).
    "CanonicalEntry": _ledger_entry(
        text(format="date-time", pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"),
        v={"const": FORMAT_VERSION},
    ),
    "Receipt": closed(
        {
            "format": {"const": RECEIPT_FORMAT},
            "origin": text("the ledger's origin line"),
            "tree_size": integer(1),
            "root_hash": BASE64,
            "checkpoint": ref("Checkpoint"),
            "checkpoint_time": nullable(text(format="date-time")),
            "entries": array(
                closed(
                    {
                        "index": integer(),
                        "entry": {**BASE64, "description": "the entry's canonical bytes"},
                        "leaf_hash": BASE64,
                        "inclusion_proof": array(BASE64),
                        "event": ref("CanonicalEntry"),
                    }
                )
            ),
            "public_key": text("the gateway's Ed25519 public key (PEM)"),
            "verifier_key": text("the C2SP note verifier key"),
            "certificate_chain": nullable(text("PEM: the gateway certificate, then its issuers")),
            "acknowledgements": array(
                text("a recipient's signed acknowledgement (compact JWS)"),
                description="the signed statements of reception that delivered entries name",
            ),
        },
        optional=("acknowledgements",),
        description="Verifiable offline: gateway audit verify-receipt",
    ),
    "Receipts": closed({"receipts": array(ref("Receipt"))}),
    "Cosignature": closed(
        {
            "checkpoint": ref("Checkpoint"),
            "cosignature": text("the witness's C2SP tlog-cosignature line: — <name> <base64>"),
        },
        description="What gateway witness cosign posts",
    ),
    "CosignatureAnswer": closed(
        {
            "tree_size": integer(),
            "witness": text("the witness's key name"),
            "cosignatures": integer(1, description="cosignatures the checkpoint now has"),
        }
    ),
    "ConsistencyProof": closed(
        {"from": integer(1), "to": integer(1), "proof": array(BASE64)},
    ),
    "Checkpoint": text(
        "A C2SP signed note: origin, tree size, root hash (base64), a blank line, signatures",
        pattern="^[^\\n]+\\n[0-9]+\\n[A-Za-z0-9+/]+=*\\n\\n(\u2014 [^\\n]+\\n)+$",
    ),
    "Unit": _unit(),
    "UnitList": closed({"units": array(ref("Unit"))}),
    "NewUnit": _unit_fields(("code", "name", "level", "delivery")),
    "UnitFields": _unit_fields(()),
    "UnitChanged": closed(
        {
            "unit": ref("Unit"),
            "changed": {
                "type": "object",
                "description": "each field set, as the directory file writes it",
                "additionalProperties": text(),
            },
            "reload": nullable(ref("ReloadResult")),
        }
    ),
    "ReloadResult": _reload_result(),
    "ReloadState": closed(
        {
            "last": nullable(ref("ReloadResult")),
            "counts": closed({"ok": integer(), "failed": integer()}),
        }
    ),
    "Backlog": closed(
        {
            "units": array(ref("BacklogUnit"), description="largest backlog first"),
            "totals": closed(
                {
                    "units": integer(description="units with something waiting or stopped"),
                    "waiting": integer(),
                    "oldest_waiting_seconds": nullable(integer()),
                    "retrying": integer(),
                    "expired": integer(),
                    "dead": integer(),
                }
            ),
            "at": TIME,
        }
    ),
    "BacklogUnit": _backlog_row(),
    "Redrive": {
        "type": "object",
        "required": ["unit"],
        "properties": {
            "unit": text("a unit code of the directory"),
            "all": {"type": "boolean"},
            "ids": array(DELIVERY_ID, minItems=1),
        },
        "anyOf": [
            {"required": ["all"], "properties": {"all": {"const": True}}},
            {"required": ["ids"]},
        ],
    },
    "RedriveAnswer": closed({"unit": text(), "redriven": integer()}),
    "Alerts": closed(
        {
            "alerts": array(
                closed(
                    {
                        "kind": values(
                            [
                                "push_failing",
                                "copy_waiting",
                                "dead_letters",
                                "cert_expiring",
                                "checkpoint_old",
                            ]
                        ),
                        "subject": text("a unit code, a certificate's SHA-256, or ledger"),
                        "since": nullable(TIME),
                        "message": text(),
                    }
                )
            )
        }
    ),
    "TokenRevoked": closed(
        {"token_id": text(), "revoked": integer(description="0: no such token, or revoked before")}
    ),
    "Health": closed({"status": {"const": "ok"}}),
    "Readiness": closed(
        {
            "ready": {"type": "boolean"},
            "database": {"enum": ["ok", "unavailable"]},
            "bus": {"enum": ["ok", "unavailable"]},
            "starting": text("the code of what the start waits for (the reason is logged)"),
        },
        optional=("database", "bus", "starting"),
    ),
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths", "components"],
        "properties": {"openapi": {"const": "3.1.0"}},
    },
}
