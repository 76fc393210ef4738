"""``parse_package``: untrusted bytes in, a checked ``Package`` (or PackageRejected) out.

The steps, each refusing as early and as cheaply as it can: size cap, hardened parse
(xmlsafe), root and kind, the strict profile's signature placement, XSD, then the semantic
checks and the model (read).
"""

from __future__ import annotations

import hashlib

from lxml import etree

from gateway.config import EnvelopeSettings
from gateway.envelope import names
from gateway.envelope.model import Kind, Package, Profile
from gateway.envelope.read import (
    Findings,
    read_document,
    read_status,
    signature_warnings,
    weak_algorithms,
)
from gateway.envelope.schema import validate_schema, where
from gateway.envelope.xmlsafe import parse_xml
from gateway.errors import PackageRejected

DEFAULT_LIMITS = EnvelopeSettings()


def package_kind(root: etree._Element) -> Kind:
    """Document or status packet, from the root and the first child of edXMLHeader."""
    if root.tag != names.ROOT:
        raise PackageRejected(
            "not_edxml",
            f"the root element is {root.tag}, not edXML in the namespace {names.NS}",
            where=f"line {root.sourceline}",
        )
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    if header is not None and header.find(names.STATUS) is not None:
        return Kind.STATUS
    return Kind.DOCUMENT


def signature_element(root: etree._Element) -> etree._Element:
    """The one W3C signature of a strict package: a direct child of edXMLHeader, its last.

    Raises signature_missing when there is none and signature_ambiguous for several signatures
    or one in any other place (the shapes of signature-wrapping attacks)."""
    signatures = list(root.iter(names.DS_SIGNATURE))
    if not signatures:
        others = [
            el for el in root.iter(tag=etree.Element) if etree.QName(el).localname == "Signature"
        ]
        hint = (
            f"; found a Signature that is not W3C XMLDSig at {where(others[0])}" if others else ""
        )
        raise PackageRejected("signature_missing", "the package has no XMLDSig signature" + hint)
    if len(signatures) > 1:
        raise PackageRejected(
            "signature_ambiguous",
            f"the package has {len(signatures)} signatures; exactly one is allowed",
            where=where(signatures[1]),
        )
    sig = signatures[0]
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    if header is None or sig.getparent() is not header:
        raise PackageRejected(
            "signature_ambiguous",
            "the signature must be a child of the package's own edXMLHeader",
            where=where(sig),
        )
    siblings = list(header.iterchildren(tag=etree.Element))
    if siblings[-1] is not sig:
        raise PackageRejected(
            "signature_ambiguous",
            "the signature must be the last child of edXMLHeader",
            where=where(sig),
        )
    return sig


def check_signature_policy(root: etree._Element) -> etree._Element:
    """Strict: one well-placed signature using no SHA-1 or weaker algorithm."""
    sig = signature_element(root)
    weak = weak_algorithms(sig)
    if weak:
        raise PackageRejected(
            "signature_weak_algorithm",
            f"the signature uses {', '.join(weak)}; SHA-256 or stronger is required",
            where=where(sig),
        )
    return sig


def read_tree(
    root: etree._Element, data: bytes, profile: Profile, *, signature_checked: bool = False
) -> Package:
    """Schema-validate and read an already parsed tree; ``data`` are the bytes it came from."""
    kind = package_kind(root)
    if profile is Profile.STRICT and not signature_checked:
        check_signature_policy(root)
    validate_schema(root, kind, profile)
    findings = Findings(profile)
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None  # the schema requires it
    if profile is Profile.COMPAT:
        signature_warnings(header, findings)
    digest = hashlib.sha256(data).hexdigest()
    if kind is Kind.STATUS:
        return read_status(header, findings, raw=data, sha256=digest)
    return read_document(root, header, findings, raw=data, sha256=digest)


def parse_package(
    data: bytes, profile: Profile = Profile.STRICT, limits: EnvelopeSettings = DEFAULT_LIMITS
) -> Package:
    """Parse, validate and read an edXML package or status packet.

    Raises PackageRejected with a catalogue code; under ``compat`` tolerated deviations are in
    ``Package.warnings``. Signatures are placed and their algorithms checked here, not verified:
    that is ``gateway.trust``'s job."""
    root = parse_xml(data, limits)
    return read_tree(root, data, Profile(profile))
