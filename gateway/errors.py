"""The gateway's one error catalogue: stable snake_case codes, their category and HTTP status.

Codes are part of the API: tests assert them, the ledger stores them, the dashboard shows them.
Never rename a code; add a new one instead.

Exception tree (add a class only when some code catches it)::

    GatewayError              every error the gateway raises on purpose; carries an ErrorCode
    ├── PackageRejected       the package (or status packet) is refused; the code says why
    │   └── Rejected          ... with extra problem members (gateway.service.core)
    ├── RetryableDeliveryError  a delivery attempt failed; the bus retries it
    │                         (gateway.bus; any other handler error dead-letters at once)
    ├── RateLimited           429 with Retry-After (gateway.api.limits)
    └── ConfigError           configuration or environment is unusable (exit 2, never a 4xx)
        └── DirectoryInvalid  the unit directory file has problems, each with its line
                              (gateway.directory; carries ``problems``)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

# Every code of the catalogue below, as a type: mypy refuses a misspelt code wherever an
# error is raised (a test checks that this list and the catalogue hold the same codes).
CodeName = Literal[
    "xml_too_large",
    "xml_malformed",
    "xml_forbidden_construct",
    "xml_too_deep",
    "not_edxml",
    "schema_invalid",
    "attachment_missing",
    "attachment_unreferenced",
    "attachment_bad_encoding",
    "organ_id_invalid",
    "document_id_invalid",
    "date_invalid",
    "sender_missing",
    "recipient_missing",
    "recipient_duplicate",
    "document_id_missing",
    "status_code_unknown",
    "signature_missing",
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
    "unknown_recipient",
    "recipient_suspended",
    "status_out_of_order",
    "status_not_recipient",
    "recall_not_sender",
    "business_target_unknown",
    "duplicate_conflict",
    "unauthenticated",
    "forbidden",
    "rate_limited",
    "bad_request",
    "method_not_allowed",
    "unsupported_media_type",
    "body_too_large",
    "request_timeout",
    "internal_error",
    "delivery_failed",
    "bus_unavailable",
    "not_found",
    "delivery_closed",
    "database_unavailable",
    "ledger_corrupt",
    "proof_invalid",
    "ack_invalid",
    "ack_signature_required",
    "witness_unknown",
    "config_invalid",
    "directory_invalid",
    "unit_invalid",
    "unit_exists",
    "reload_refused",
]


class Category(enum.StrEnum):
    """What kind of failure a code describes; decides how callers react to it."""

    XML = "xml"  # the bytes are not acceptable XML at all
    SCHEMA = "schema"  # well-formed XML, but not a valid edXML package
    CONTENT = "content"  # valid structure, inconsistent content
    SIGNATURE = "signature"  # XMLDSig problems
    CERTIFICATE = "certificate"  # the signer certificate is not acceptable
    SENDER = "sender"  # who may speak for whom
    ROUTING = "routing"  # recipients and the directory
    WORKFLOW = "workflow"  # business state machine
    CONFLICT = "conflict"  # idempotency
    AUTH = "auth"  # authentication and authorisation
    HTTP = "http"  # the request itself
    TRANSPORT = "transport"  # bus and delivery
    LEDGER = "ledger"  # the delivery ledger
    CONFIG = "config"  # configuration and environment


class Origin(enum.StrEnum):
    """Whose fault it is: the client's input or the gateway's side."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: CodeName
    category: Category
    http_status: int
    title: str
    origin: Origin = Origin.CLIENT


def _catalogue(*codes: ErrorCode) -> dict[str, ErrorCode]:
    table: dict[str, ErrorCode] = {}
    for c in codes:
        if c.code in table:
            raise RuntimeError(f"duplicate error code {c.code}")
        table[c.code] = c
    return table


_C = Category
CODES: dict[str, ErrorCode] = _catalogue(
    # XML layer
    ErrorCode("xml_too_large", _C.XML, 413, "The package exceeds the size limit"),
    ErrorCode("xml_malformed", _C.XML, 400, "The package is not well-formed XML"),
    ErrorCode(
        "xml_forbidden_construct", _C.XML, 400, "DOCTYPE, entity or processing construct refused"
    ),
    ErrorCode("xml_too_deep", _C.XML, 400, "The XML is nested too deeply or has too many nodes"),
    ErrorCode("not_edxml", _C.XML, 400, "The document is not an edXML package or status packet"),
    # Schema and content
    ErrorCode("schema_invalid", _C.SCHEMA, 422, "The package does not match the edXML schema"),
    ErrorCode("attachment_missing", _C.CONTENT, 422, "A manifest reference has no attachment"),
    ErrorCode("attachment_unreferenced", _C.CONTENT, 422, "An attachment is not in the manifest"),
    ErrorCode("attachment_bad_encoding", _C.CONTENT, 422, "An attachment is not valid base64"),
    ErrorCode("organ_id_invalid", _C.CONTENT, 422, "An OrganId is not in the national format"),
    ErrorCode(
        "document_id_invalid", _C.CONTENT, 422, "The DocumentId is malformed or inconsistent"
    ),
    ErrorCode("date_invalid", _C.CONTENT, 422, "A date or timestamp is not a real date"),
    ErrorCode("sender_missing", _C.CONTENT, 422, "The package names no sender"),
    ErrorCode("recipient_missing", _C.CONTENT, 422, "The package names no recipient"),
    ErrorCode("recipient_duplicate", _C.CONTENT, 422, "A recipient is named more than once"),
    ErrorCode(
        "document_id_missing", _C.CONTENT, 422, "The package names no DocumentId to key it by"
    ),
    ErrorCode(
        "status_code_unknown", _C.CONTENT, 422, "The status packet has an unknown StatusCode"
    ),
    # Signature
    ErrorCode("signature_missing", _C.SIGNATURE, 422, "The package is not signed"),
    ErrorCode("signature_invalid", _C.SIGNATURE, 422, "The signature does not match the content"),
    ErrorCode("signature_weak_algorithm", _C.SIGNATURE, 422, "The signature uses a weak algorithm"),
    ErrorCode(
        "signature_ambiguous",
        _C.SIGNATURE,
        422,
        "Several signatures or references, or a signature in the wrong place",
    ),
    # Certificates
    ErrorCode("cert_untrusted", _C.CERTIFICATE, 422, "The signer certificate is not trusted"),
    ErrorCode("cert_expired", _C.CERTIFICATE, 422, "The signer certificate has expired"),
    ErrorCode("cert_not_yet_valid", _C.CERTIFICATE, 422, "The signer certificate is not yet valid"),
    ErrorCode("cert_revoked", _C.CERTIFICATE, 422, "The signer certificate is revoked"),
    ErrorCode(
        "cert_usage_invalid", _C.CERTIFICATE, 422, "The signer certificate may not sign documents"
    ),
    # Sender
    ErrorCode("sender_mismatch", _C.SENDER, 422, "The signer may not speak for From/OrganId"),
    ErrorCode("sender_unknown", _C.SENDER, 422, "The sender is not in the unit directory"),
    ErrorCode("sender_suspended", _C.SENDER, 422, "The sender is suspended"),
    # Routing
    ErrorCode("unknown_recipient", _C.ROUTING, 422, "A recipient is not in the unit directory"),
    ErrorCode("recipient_suspended", _C.ROUTING, 422, "A recipient is suspended"),
    # Workflow
    ErrorCode("status_out_of_order", _C.WORKFLOW, 422, "The status does not follow the last one"),
    ErrorCode(
        "status_not_recipient", _C.WORKFLOW, 422, "The responder never received this document"
    ),
    ErrorCode("recall_not_sender", _C.WORKFLOW, 422, "Only the original sender may recall"),
    ErrorCode(
        "business_target_unknown",
        _C.WORKFLOW,
        422,
        "The revoke/update/replace refers to no earlier document of this sender",
    ),
    # Idempotency
    ErrorCode(
        "duplicate_conflict", _C.CONFLICT, 409, "The DocumentId was sent before with other content"
    ),
    # Auth
    ErrorCode("unauthenticated", _C.AUTH, 401, "A valid bearer token is required"),
    ErrorCode("forbidden", _C.AUTH, 403, "The token's unit or role may not do this"),
    ErrorCode("rate_limited", _C.AUTH, 429, "Too many requests"),
    # HTTP
    ErrorCode("bad_request", _C.HTTP, 400, "The request is malformed"),
    ErrorCode("method_not_allowed", _C.HTTP, 405, "The method is not allowed here"),
    ErrorCode("unsupported_media_type", _C.HTTP, 415, "The body has the wrong content type"),
    ErrorCode("body_too_large", _C.HTTP, 413, "The request body exceeds the size limit"),
    ErrorCode("request_timeout", _C.HTTP, 408, "The request body did not arrive in time"),
    ErrorCode("internal_error", _C.HTTP, 500, "The gateway failed", Origin.SERVER),
    # Transport
    ErrorCode("delivery_failed", _C.TRANSPORT, 502, "The recipient endpoint refused the delivery"),
    ErrorCode(
        "bus_unavailable", _C.TRANSPORT, 503, "The message bus is unreachable", Origin.SERVER
    ),
    ErrorCode("not_found", _C.TRANSPORT, 404, "No such resource"),
    ErrorCode(
        "delivery_closed",
        _C.TRANSPORT,
        410,
        "The copy is no longer live (delivered, expired or dead): its body is not served",
    ),
    ErrorCode(
        "database_unavailable",
        _C.TRANSPORT,
        503,
        "The database is unreachable or does not answer",
        Origin.SERVER,
    ),
    # Ledger
    ErrorCode("ledger_corrupt", _C.LEDGER, 500, "The ledger failed verification", Origin.SERVER),
    ErrorCode("proof_invalid", _C.LEDGER, 422, "A receipt or proof does not verify"),
    ErrorCode(
        "ack_invalid",
        _C.LEDGER,
        422,
        "The signed acknowledgement is malformed, does not verify, or names another copy",
    ),
    ErrorCode(
        "ack_signature_required",
        _C.LEDGER,
        422,
        "This unit must acknowledge its copies with a signed statement",
    ),
    ErrorCode(
        "witness_unknown", _C.LEDGER, 422, "The cosignature is by no witness the gateway knows"
    ),
    # Configuration
    ErrorCode("config_invalid", _C.CONFIG, 500, "The configuration is unusable", Origin.SERVER),
    ErrorCode(
        "directory_invalid", _C.CONFIG, 500, "The unit directory file is invalid", Origin.SERVER
    ),
    ErrorCode("unit_invalid", _C.CONFIG, 422, "The unit change would make the directory invalid"),
    ErrorCode("unit_exists", _C.CONFIG, 409, "The unit is already in the directory"),
    ErrorCode(
        "reload_refused",
        _C.CONFIG,
        422,
        "The directory or trust files did not pass their checks; nothing changed",
    ),
)


def lookup(code: str) -> ErrorCode:
    """The catalogue entry of ``code``; unknown codes are a programming error."""
    try:
        return CODES[code]
    except KeyError as e:
        raise KeyError(f"{code!r} is not in the error catalogue") from e


class GatewayError(Exception):
    """An error with a catalogue code, a human message and, where known, a location."""

    def __init__(self, code: CodeName, message: str, *, where: str | None = None) -> None:
        self.error = lookup(code)
        self.message = message
        self.where = where
        super().__init__(f"{code}: {message}" + (f" (at {where})" if where else ""))

    @property
    def code(self) -> CodeName:
        return self.error.code

    @property
    def http_status(self) -> int:
        return self.error.http_status

    def to_problem(self) -> dict[str, object]:
        """RFC 9457 problem details, with the catalogue code as an extension member."""
        problem: dict[str, object] = {
            "type": f"urn:gateway:error:{self.code}",
            "title": self.error.title,
            "status": self.http_status,
            "code": self.code,
            "detail": self.message,
        }
        if self.where:
            problem["where"] = self.where
        return problem


class PackageRejected(GatewayError):
    """The package or status packet is refused; nothing about it is accepted."""


class ConfigError(GatewayError):
    """The configuration or environment is unusable."""

    def __init__(self, message: str, *, code: CodeName = "config_invalid") -> None:
        super().__init__(code, message)
