"""edXML packages (QCVN 102:2016): hardened parsing, XSD validation, the semantic checks and the
typed model, and building packages from the model. Pure: bytes in, values or errors out."""

from gateway.envelope.build import build_package, build_tree
from gateway.envelope.model import (
    STATUS_CODES,
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentType,
    Kind,
    Organization,
    Package,
    PackageWarning,
    Profile,
    Receiver,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusInfo,
    TraceHeader,
)
from gateway.envelope.names import make_document_id
from gateway.envelope.parse import Reading, check, parse_package

__all__ = [
    "STATUS_CODES",
    "Attachment",
    "Business",
    "BusinessType",
    "Code",
    "DocumentType",
    "Kind",
    "Organization",
    "Package",
    "PackageWarning",
    "Profile",
    "Reading",
    "Receiver",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusInfo",
    "TraceHeader",
    "build_package",
    "build_tree",
    "check",
    "make_document_id",
    "parse_package",
]
