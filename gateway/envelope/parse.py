"""``check``: untrusted bytes in, a ``Reading`` of a package that passed every check (or
PackageRejected with the first failure's code) out; ``parse_package`` reads the model at once.

The steps, each refusing as early and as cheaply as it can: size cap, hardened parse
(xmlsafe), root and kind, the edXML schema (which also counts and pairs, by identity
constraints), then the checks the schema cannot express.

Most packages are valid, so validity is decided on the fast path: the schemas say nearly
everything (formats, real dates, counts, pairings, and in strict the whole signature policy),
one compiled XPath checks the rest, and decoding the attachments proves their base64. Whenever
the fast path finds a fault, the checked path (``read_checked``) takes over: every check in its
documented order, the first failure raised with its own error code, the same verdict either
way. The model is read when ``Reading.package()`` is first called: every check is done by then,
so the reading cannot fail, and a caller that only routes or refuses does not pay for it.
"""

from __future__ import annotations

import hashlib
import threading
from typing import BinaryIO

from lxml import etree

from gateway.config import EnvelopeSettings
from gateway.envelope import names
from gateway.envelope.deviations import header_deviations, signature_warnings
from gateway.envelope.model import Kind, Package, PackageWarning, Profile
from gateway.envelope.read import (
    Findings,
    decode_attachments,
    read_document,
    read_status,
)
from gateway.envelope.schema import (
    constraint_failure,
    is_value_error,
    schema_errors,
    schema_rejection,
    where,
)
from gateway.envelope.signature import check_signature_policy
from gateway.envelope.xmlsafe import check_tree_depth, parse_xml
from gateway.errors import PackageRejected

DEFAULT_LIMITS = EnvelopeSettings()


_BLOCKS = (names.MESSAGE_HEADER, names.STATUS)


def header_block(root: etree._Element) -> etree._Element | None:
    """The MessageHeader or Status of an edXML package's edXMLHeader: its first element, as
    the schemas require, or (compat reads a header out of order) the first such element."""
    if root.tag != names.ROOT:
        return None
    try:  # the common case: no comment or processing instruction before them
        envelope = root[0]
        header = envelope[0]
        first = header[0]
        if envelope.tag == names.ENVELOPE and header.tag == names.HEADER and first.tag in _BLOCKS:
            return first
    except IndexError:
        pass
    for envelope in root.iterchildren(names.ENVELOPE):
        for header in envelope.iterchildren(names.HEADER):
            return next(header.iterchildren(*_BLOCKS), None)
    return None


def package_kind(root: etree._Element, block: etree._Element | None = None) -> Kind | None:
    """Document or status packet, from the block of edXMLHeader (``block`` when already
    found); None if not edXML."""
    if root.tag != names.ROOT:
        return None
    block = header_block(root) if block is None else block
    return Kind.STATUS if block is not None and block.tag == names.STATUS else Kind.DOCUMENT


def not_edxml(root: etree._Element) -> PackageRejected:
    return PackageRejected(
        "not_edxml",
        f"the root element is {root.tag}, not edXML in the namespace {names.NS}",
        where=f"line {root.sourceline}",
    )


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
        self.sender = etree.XPath("normalize-space(e:From/e:OrganId)", namespaces={"e": names.NS})


_local = _PerThread()


class Reading:
    """A package that has passed every check of its profile (``check``'s answer): its kind,
    sender and warnings at once, its model when ``package()`` is first called, read from
    ``tree`` without checking anything again. A caller that only routes or refuses a package
    does not pay for the reading."""

    __slots__ = ("_contents", "_package", "_source", "kind", "profile", "tree", "warnings")

    def __init__(
        self,
        tree: etree._Element,
        kind: Kind,
        profile: Profile,
        source: bytes | BinaryIO,
        *,
        warnings: tuple[PackageWarning, ...] = (),
        contents: list[bytes] | None = None,
        package: Package | None = None,
    ) -> None:
        self.tree = tree
        self.kind = kind
        self.profile = profile
        self.warnings = warnings
        self._source = source  # the bytes, or the open file that holds them (a spooled scan)
        self._contents = contents  # the attachments, when the fast path decoded them
        self._package = package

    @property
    def sender(self) -> str:
        """From/OrganId (a status packet's responder), without reading the rest."""
        if self._package is not None:
            return self._package.sender.organ_id
        first = header_block(self.tree)
        assert first is not None  # checked
        return str(_local.sender(first))

    def package(self) -> Package:
        """The model (read once)."""
        if self._package is None:
            self._package = self._read()
            self._contents = None
        return self._package

    def of(
        self, tree: etree._Element, warnings: tuple[PackageWarning, ...] | None = None
    ) -> Reading:
        """The same reading of another tree with the same content: the signed XML that
        signature verification returns, from which the model is then read. ``warnings``
        replace the reading's own when given."""
        return Reading(
            tree,
            self.kind,
            self.profile,
            self._source,
            warnings=self.warnings if warnings is None else warnings,
            contents=self._contents,
            package=self._package if tree is self.tree and warnings is None else None,
        )

    def _read(self) -> Package:
        contents = self._contents
        if isinstance(self._source, bytes):
            data = self._source
        else:
            # A spooled scan: its attachments are decoded before its bytes are read (decoding
            # holds the base64 text as a string for a moment, and not the bytes with it).
            if contents is None and self.kind is Kind.DOCUMENT:
                contents = decode_attachments(self.tree)
            self._source.seek(0)
            data = self._source.read()
        header = self.tree.find(f"{names.ENVELOPE}/{names.HEADER}")
        assert header is not None  # checked
        findings = Findings(self.profile, checked=True)
        findings.warnings.extend(self.warnings)
        sha256 = hashlib.sha256(data).hexdigest()
        if self.kind is Kind.STATUS:
            return read_status(header, findings, raw=data, sha256=sha256)
        return read_document(self.tree, header, findings, contents, raw=data, sha256=sha256)


def check(
    data: bytes | BinaryIO,
    profile: Profile | str = Profile.STRICT,
    limits: EnvelopeSettings = DEFAULT_LIMITS,
    *,
    tree: etree._Element | None = None,
    unchecked_depth: int | None = None,
) -> Reading:
    """The envelope's verdict on a package or status packet: every check of ``profile``, the
    first failure raised as PackageRejected with its catalogue code, else its Reading.

    ``data`` are the package's bytes, or an open file holding them. ``tree``: the same bytes
    already parsed by ``xmlsafe.parse_xml`` (the verifier's tree, which keeps what the
    signature covers), with the depth limit left to be checked here if ``unchecked_depth``;
    without it, the bytes are parsed here, for reading only. Signatures are placed and their
    algorithms checked here, not verified: that is ``gateway.trust``'s job."""
    profile = Profile(profile)
    if tree is None:
        tree = parse_xml(data, limits, check_depth=False, content_only=True)
        unchecked_depth = limits.max_depth
    first = header_block(tree)
    kind = package_kind(tree, first)
    errors = [] if kind is None else schema_errors(tree, kind, profile)
    reading = None
    if not errors and kind is Kind.DOCUMENT and profile is Profile.STRICT:
        assert first is not None  # the MessageHeader, as the schema requires
        reading = _fast_reading(tree, first, data)
    # A tree valid under a strict schema is no deeper than STRICT_DEPTH.
    if unchecked_depth is not None and (reading is None or unchecked_depth < STRICT_DEPTH):
        check_tree_depth(tree, unchecked_depth)
    if reading is not None:
        return reading
    if kind is None:
        raise not_edxml(tree)
    if not isinstance(data, bytes):
        data.seek(0)
        data = data.read()
    package = read_checked(tree, data, kind, profile, errors)
    return Reading(tree, kind, profile, data, warnings=package.warnings, package=package)


def _fast_reading(
    root: etree._Element, message: etree._Element, source: bytes | BinaryIO
) -> Reading | None:
    """The Reading of a strict document whose tree the strict schema has found valid,
    ``message`` its MessageHeader; None when a check fails (read_checked says which).

    The strict schema has placed the one signature and checked its algorithms, the OrganId and
    DocumentId formats, dates, counts and pairings; FAST_CHECKS does the rest, and decoding
    the attachments proves their base64. The Reading keeps what was decoded, but for a spooled
    scan: held through the signature's check (the peak of a scan's memory) it would add the
    attachments' size to that peak, so the model decodes them again."""
    if not _local.fast_checks(message):
        return None
    try:
        contents: list[bytes] | None = decode_attachments(root)
    except PackageRejected:
        return None
    if not isinstance(source, bytes):
        contents = None
    return Reading(root, Kind.DOCUMENT, Profile.STRICT, source, contents=contents)


def read_checked(
    root: etree._Element, data: bytes, kind: Kind, profile: Profile, errors: list[object]
) -> Package:
    """Every check in order, the first failure raised with its code; ``errors`` are the
    schema's. The signature's place, SignedInfo and algorithms come first (in compat those of
    a W3C signature if there is one), then structural schema
    errors as schema_invalid, then the identity constraints under their own codes; value errors
    (formats, real dates) are left to the reading, which names them precisely. In compat the
    errors inside edXMLHeader are warnings instead (``deviations``), and the reading refuses
    what cannot be routed."""
    check_signature_policy(root, profile)
    deviations: list[PackageWarning] = []
    if profile is Profile.COMPAT:
        deviations, errors = header_deviations(
            root, errors, lambda tree: schema_errors(tree, kind, profile)
        )
        header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
        if header is not None and header_block(root) is None:
            raise PackageRejected(
                "sender_missing",
                "edXMLHeader has neither MessageHeader nor Status: no sender",
                where=where(header),
            )
    structural = next((e for e in errors if not is_value_error(e)), None)
    if structural is not None:
        raise schema_rejection(root, structural)
    constraint = constraint_failure(root, errors)
    if constraint is not None:
        raise constraint
    findings = Findings(profile)
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None  # the schema requires it
    if profile is Profile.COMPAT:
        findings.warnings.extend(signature_warnings(header))
        findings.warnings.extend(deviations)
    digest = hashlib.sha256(data).hexdigest()
    if kind is Kind.STATUS:
        package = read_status(header, findings, raw=data, sha256=digest)
    else:
        package = read_document(root, header, findings, raw=data, sha256=digest)
    if errors:  # a value the schema refuses that the reading let through
        raise schema_rejection(root, errors[0])
    return package


def parse_package(
    data: bytes, profile: Profile | str = Profile.STRICT, limits: EnvelopeSettings = DEFAULT_LIMITS
) -> Package:
    """Parse, validate and read an edXML package or status packet: ``check`` and the model.

    Raises PackageRejected with a catalogue code; under ``compat`` tolerated deviations are in
    ``Package.warnings``."""
    return check(data, profile, limits).package()
