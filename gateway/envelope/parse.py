"""``parse_package``: untrusted bytes in, a checked ``Package`` (or PackageRejected) out.

The steps, each refusing as early and as cheaply as it can: size cap, hardened parse
(xmlsafe), root and kind, the edXML schema, then the checks the schema cannot express.

Most packages are valid, so validity is decided on the fast path: the schemas say nearly
everything (formats, real dates, counts, pairings, and in strict the whole signature policy),
one compiled XPath checks the rest, and a strict document's fields other than its kind
are read from the tree only when first used (``Package.deferred``). Whenever the fast path
finds a fault, the checked path (``read_checked``) takes over: every check in its documented
order, the first failure raised with its own error code, the same verdict either way.
"""

from __future__ import annotations

import hashlib
import threading
from typing import BinaryIO

from lxml import etree

from gateway.config import EnvelopeSettings
from gateway.envelope import names
from gateway.envelope.model import Kind, Package, Profile
from gateway.envelope.read import (
    Findings,
    decode_attachments,
    read_document,
    read_status,
    signature_warnings,
)
from gateway.envelope.schema import is_value_error, schema_errors, schema_rejection, where
from gateway.envelope.signature import weak_algorithms
from gateway.envelope.xmlsafe import check_tree_depth, parse_xml
from gateway.errors import PackageRejected

DEFAULT_LIMITS = EnvelopeSettings()


def header_first(root: etree._Element) -> etree._Element | None:
    """The first element of an edXML package's edXMLHeader (MessageHeader or Status)."""
    if root.tag != names.ROOT:
        return None
    try:  # the common case: no comment or processing instruction before them
        envelope = root[0]
        header = envelope[0]
        first = header[0]
        if (
            envelope.tag == names.ENVELOPE
            and header.tag == names.HEADER
            and isinstance(first.tag, str)
        ):
            return first
    except IndexError:
        pass
    for envelope in root.iterchildren(names.ENVELOPE):
        for header in envelope.iterchildren(names.HEADER):
            return next(header.iterchildren(tag=etree.Element), None)
    return None


def package_kind(root: etree._Element, first: etree._Element | None = None) -> Kind | None:
    """Document or status packet, from the first element of edXMLHeader (``first`` when
    already found); None if not edXML."""
    if root.tag != names.ROOT:
        return None
    first = header_first(root) if first is None else first
    return Kind.STATUS if first is not None and first.tag == names.STATUS else Kind.DOCUMENT


def not_edxml(root: etree._Element) -> PackageRejected:
    return PackageRejected(
        "not_edxml",
        f"the root element is {root.tag}, not edXML in the namespace {names.NS}",
        where=f"line {root.sourceline}",
    )


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


# What the schema cannot say of a document's MessageHeader (it admits its children in any
# order): one To at least, SignerInfo, OtherInfo and ToPlaces at most once, and a DocumentId
# made of From/OrganId, PromulgationDate and Code (compared collapsed, as read.py compares).
# Evaluated on the MessageHeader.
FAST_CHECKS = (
    "e:To and not(e:SignerInfo[2]) and not(e:OtherInfo[2]) and not(e:ToPlaces[2]) and "
    "normalize-space(e:DocumentId) = concat(normalize-space(e:From/e:OrganId), ',', "
    "normalize-space(e:PromulgationInfo/e:PromulgationDate), ',', "
    "normalize-space(e:Code/e:CodeNumber), '/', normalize-space(e:Code/e:CodeNotation))"
)


# The deepest element a package valid under a strict schema can hold (edXML/.../Receiver/
# OrganId): the strict schemas admit no wildcard, and a test walks them to prove the bound.
STRICT_DEPTH = 9


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.fast_checks = etree.XPath(FAST_CHECKS, namespaces={"e": names.NS})


_local = _PerThread()


def read_tree(
    root: etree._Element,
    data: bytes,
    profile: Profile,
    *,
    signature_checked: bool = False,
    unchecked_depth: int | None = None,
) -> Package:
    """Schema-validate and read an already parsed tree; ``data`` are the bytes it came from.

    ``signature_checked``: the signature's place and algorithms are known good (verified).
    ``unchecked_depth``: the depth limit, when the parse left it to be checked here."""
    first = header_first(root)
    kind = package_kind(root, first)
    errors = [] if kind is None else schema_errors(root, kind, profile)
    package = None
    if not errors and kind is Kind.DOCUMENT and profile is Profile.STRICT:
        assert first is not None  # the MessageHeader, as the schema requires
        package = read_valid_document(root, first, data)
    # A tree valid under a strict schema is no deeper than STRICT_DEPTH.
    if unchecked_depth is not None and (package is None or unchecked_depth < STRICT_DEPTH):
        check_tree_depth(root, unchecked_depth)
    if package is not None:
        return package
    if kind is None:
        raise not_edxml(root)
    return read_checked(root, data, kind, profile, errors, signature_checked=signature_checked)


def read_valid_document(
    root: etree._Element, message: etree._Element, source: bytes | BinaryIO
) -> Package | None:
    """A strict document whose tree the strict schema has found valid, ``message`` its
    MessageHeader, ``source`` its bytes (or the open file that holds them, read once the
    attachments are decoded, so that a scan is not in memory three times at once); None when
    a check fails (read_checked says which).

    The strict schema has placed the one signature and checked its algorithms, the OrganId and
    DocumentId formats, dates, counts and the manifest; FAST_CHECKS does the rest, and decoding
    the attachments proves their base64."""
    if not _local.fast_checks(message):
        return None
    try:
        contents = decode_attachments(root)
    except PackageRejected:
        return None
    if isinstance(source, bytes):
        data = source
    else:
        source.seek(0)
        data = source.read()

    def read() -> Package:
        header = message.getparent()
        assert header is not None
        findings = Findings(Profile.STRICT, checked=True)
        sha256 = hashlib.sha256(data).hexdigest()
        return read_document(root, header, findings, contents, raw=data, sha256=sha256)

    return Package.deferred(read, kind=Kind.DOCUMENT, raw=data, warnings=())


def read_checked(
    root: etree._Element,
    data: bytes,
    kind: Kind,
    profile: Profile,
    errors: list[object],
    *,
    signature_checked: bool = False,
) -> Package:
    """Every check in order, the first failure raised with its code; ``errors`` are the
    schema's. Structural schema errors come first as schema_invalid; value errors (formats,
    counts, pairings) are left to the reading, which names them precisely."""
    if profile is Profile.STRICT and not signature_checked:
        check_signature_policy(root)
    structural = next((e for e in errors if not is_value_error(e)), None)
    if structural is not None:
        raise schema_rejection(root, structural)
    findings = Findings(profile)
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None  # the schema requires it
    if profile is Profile.COMPAT:
        signature_warnings(header, findings)
    digest = hashlib.sha256(data).hexdigest()
    if kind is Kind.STATUS:
        package = read_status(header, findings, raw=data, sha256=digest)
    else:
        package = read_document(root, header, findings, raw=data, sha256=digest)
    if errors:  # a value the schema refuses that the reading let through
        raise schema_rejection(root, errors[0])
    return package


def parse_package(
    data: bytes, profile: Profile = Profile.STRICT, limits: EnvelopeSettings = DEFAULT_LIMITS
) -> Package:
    """Parse, validate and read an edXML package or status packet.

    Raises PackageRejected with a catalogue code; under ``compat`` tolerated deviations are in
    ``Package.warnings``. Signatures are placed and their algorithms checked here, not verified:
    that is ``gateway.trust``'s job."""
    root = parse_xml(data, limits, check_depth=False, content_only=True)
    return read_tree(root, data, Profile(profile), unchecked_depth=limits.max_depth)
