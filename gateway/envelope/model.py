"""The typed model of an edXML package or status packet, as read by ``parse_package`` and
written by ``build_package``."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime


class Kind(enum.StrEnum):
    DOCUMENT = "document"
    STATUS = "status"


class Profile(enum.StrEnum):
    """How strictly a package is judged."""

    STRICT = "strict"  # units of this gateway: everything checked, every deviation rejected
    COMPAT = "compat"  # relayed or legacy packets: deviations become named warnings


# Status codes of QCVN 102 status packets, with their meaning.
STATUS_CODES: dict[str, str] = {
    "01": "arrived",
    "02": "rejected",
    "03": "accepted",
    "04": "assigned",
    "05": "in progress",
    "06": "done",
    "13": "recall requested",
    "15": "recall or update agreed",
    "16": "recall or update refused",
}


@dataclass(frozen=True, slots=True)
class Organization:
    organ_id: str
    name: str | None = None
    in_charge: str | None = None
    address: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Code:
    number: str
    notation: str

    def __str__(self) -> str:
        return f"{self.number}/{self.notation}"


@dataclass(frozen=True, slots=True)
class DocumentType:
    type: int
    detail: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """The document a status packet (or a reply letter) answers."""

    organ_id: str
    code: str  # "<number>/<notation>" as one text
    promulgation_date: date | None  # None only in compat, when the packet leaves it out
    document_id: str


@dataclass(frozen=True, slots=True)
class TraceHeader:
    organ_id: str | None
    timestamp: datetime | None  # None only in compat, when the packet leaves it out


@dataclass(frozen=True, slots=True)
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    organ_id: str
    added: bool  # ReceiverType 1 added, 0 removed


class BusinessType(enum.IntEnum):
    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True, slots=True)
class Business:
    doc_type: BusinessType = BusinessType.NEW
    reason: str | None = None
    document_id: str | None = None  # the target of a revoke, update or replace
    paper: int | None = None
    staff: StaffInfo | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment: its manifest facts and its content (decoded from base64 once, when the
    package is read, which also proves the base64 valid); its SHA-256 is worked out on first use."""

    content_id: str
    name: str
    content_type: str
    data: bytes = field(repr=False)
    description: str | None = None
    _sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            object.__setattr__(self, "_sha256", hashlib.sha256(self.data).hexdigest())
        assert self._sha256 is not None
        return self._sha256


@dataclass(frozen=True, slots=True)
class StatusInfo:
    code: str
    timestamp: datetime | None  # None only in compat, when the packet leaves it out
    response_for: ResponseFor
    description: str | None = None
    staff: StaffInfo | None = None


@dataclass(frozen=True, slots=True)
class PackageWarning:
    """A deviation accepted under the compat profile, named by a stable code."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Package:
    """A document package or a status packet.

    For a status packet, ``sender`` is the responder, ``recipients`` the original sender and
    ``document_id`` the DocumentId answered; the other document fields are empty.
    ``raw``, ``sha256`` and ``warnings`` describe one reading of the bytes and take no part in
    equality, so a model compares equal to its parsed round trip.
    """

    kind: Kind
    sender: Organization
    recipients: tuple[Organization, ...]
    document_id: str
    code: Code | None = None
    subject: str | None = None
    content: str | None = None
    promulgation_place: str | None = None
    promulgation_date: date | None = None
    document_type: DocumentType | None = None
    signer: SignerInfo | None = None
    due_date: date | None = None
    priority: int = 0
    steering_type: int | None = None
    to_places: tuple[str, ...] = ()
    response_for: tuple[ResponseFor, ...] = ()
    business: Business | None = None
    traces: tuple[TraceHeader, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    status: StatusInfo | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)
    sha256: str = field(default="", compare=False)
    warnings: tuple[PackageWarning, ...] = field(default=(), compare=False)

    @property
    def document_key(self) -> str:
        """``<sender OrganId>|<DocumentId>``: how the ledger and the API name a document.

        A status packet names the document it answers (whose sender is its recipient)."""
        issuer = self.recipients[0] if self.kind is Kind.STATUS else self.sender
        return f"{issuer.organ_id}|{self.document_id}"
