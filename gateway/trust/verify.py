"""``verify_package``: the envelope's checks, then the strict XMLDSig check (docs/trust.md) over
signxml, and the model read from the signed XML only.

Order: hardened parse; the envelope (``gateway.envelope.check``: schema and rules, and in
``strict`` the signature policy of ``gateway.envelope.signature``: one W3C signature, the last
child of the package's own edXMLHeader, one Reference ``URI=""`` with only enveloped-signature
and C14N transforms, strong algorithms); the signer certificate from KeyInfo; the
cryptographic check by signxml (a new verifier per call, the certificate pinned, the location
pinned); the certificate against the trust store (chain cached per certificate, CRL); the
sender against the directory and the certificate; the model, read from signxml's
``signed_xml`` when first used.

In ``compat`` the failures that legacy and relayed packets show become a recorded
``signature_state`` instead of a rejection; a signature that does not match its content
(``signature_invalid``) and an ambiguous signature are always rejected.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from base64 import b64decode
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.hashes import SHA256
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidDigest, SignXMLException
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from gateway.config import EnvelopeSettings
from gateway.directory import Directory
from gateway.envelope import Package, PackageWarning, Profile, Reading, check, names
from gateway.envelope import signature as policy
from gateway.envelope.parse import not_edxml
from gateway.envelope.xmlsafe import HUGE_TEXT_BYTES, parse_xml, parser_for
from gateway.errors import PackageRejected
from gateway.trust.pki import organ_ids
from gateway.trust.store import TrustStore

DEFAULT_LIMITS = EnvelopeSettings()

_DS = f"{{{names.DS_NS}}}"
_LOCATION = f"./{names.ENVELOPE}/{names.HEADER}/"

# The policy (gateway.envelope.signature) as signxml's names: strict, then compat, which also
# verifies the weak algorithms and records the signature as weak.
STRICT_SIGNATURE_METHODS = frozenset(
    m for m in SignatureMethod if m.value in policy.SIGNATURE_METHODS
)
STRICT_DIGESTS = frozenset(d for d in DigestAlgorithm if d.value in policy.DIGEST_METHODS)
COMPAT_SIGNATURE_METHODS = STRICT_SIGNATURE_METHODS | frozenset(
    m for m in SignatureMethod if m.value in policy.WEAK_SIGNATURE_METHODS
)
COMPAT_DIGESTS = STRICT_DIGESTS | frozenset(
    d for d in DigestAlgorithm if d.value in policy.WEAK_DIGEST_METHODS
)


class SignatureState(enum.StrEnum):
    """What the gateway knows about a package's signature (recorded in the ledger)."""

    VALID = "valid"  # verified, trusted, bound to the sender
    ABSENT = "absent"  # compat: no signature at all
    NOT_XMLDSIG = "not_xmldsig"  # compat: a Signature element that is not W3C XMLDSig
    WEAK_ALGORITHM = "weak_algorithm"  # compat: verified, but with SHA-1 or another weak algorithm
    UNTRUSTED = "untrusted"  # compat: verified, but the certificate or the binding failed
    INVALID = "invalid"  # never returned: a signature that does not match is always rejected


_UNSIGNED = frozenset({SignatureState.ABSENT, SignatureState.NOT_XMLDSIG})


@dataclass(frozen=True, slots=True)
class VerifiedPackage:
    """A verified package: its reading of the signed XML and what is known of its signer."""

    reading: Reading
    signature_state: SignatureState
    signer: str | None  # the OrganId the certificate speaks for (None when unknown)
    cert_sha256: str | None  # SHA-256 fingerprint of the signer certificate
    problem: str | None = None  # compat: the error code strict would have raised
    message: str | None = None  # compat: its message
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return self.signature_state is SignatureState.VALID

    @property
    def package(self) -> Package:
        """The model, read from the signed XML when first asked for."""
        return self.reading.package()


@functools.lru_cache(maxsize=4096)
def _certificate(text: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(b64decode("".join(text.split()), validate=True))


def _signature(root: etree._Element, profile: Profile) -> etree._Element | SignatureState:
    """The one W3C signature of the package, or (compat) the state of a package without one."""
    if profile is Profile.COMPAT and next(root.iter(names.DS_SIGNATURE), None) is None:
        others = any(
            etree.QName(el).localname == "Signature" for el in root.iter(tag=etree.Element)
        )
        return SignatureState.NOT_XMLDSIG if others else SignatureState.ABSENT
    return policy.signature_element(root, profile)


def _check_no_unsigned_nodes(root: etree._Element) -> None:
    # Exclusive C14N drops comments and keeps PIs out of the digest's meaning for readers; a
    # comment inside a signed value (<OrganId>000.00.05<!---->.H07</OrganId>) is the classic
    # way to make a naive reader see something else than what was signed.
    node = next(root.iter(etree.Comment, etree.ProcessingInstruction), None)
    if node is not None:
        raise PackageRejected(
            "signature_ambiguous",
            "comments and processing instructions inside a strict package are not allowed "
            "(the signature does not cover them)",
            where=f"line {node.sourceline}",
        )


def _signer_certificates(sig: etree._Element) -> list[x509.Certificate]:
    texts = [
        el.text or "" for el in sig.iterfind(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    ]
    certs = []
    for text in texts:
        try:
            certs.append(_certificate(text))
        except (ValueError, x509.InvalidVersion) as e:
            raise PackageRejected(
                "signature_invalid", "an X509Certificate of the signature is not a certificate"
            ) from e
    return certs


def _leaf(certs: list[x509.Certificate]) -> x509.Certificate:
    """The signer certificate: the one that issued none of the others."""
    if len(certs) == 1:
        return certs[0]
    try:
        leaves = [c for c in certs if not any(o is not c and o.issuer == c.subject for o in certs)]
    except (ValueError, TypeError) as e:  # names are read only now: a malformed one raises
        message = f"a certificate in KeyInfo is malformed: {e}"
        raise PackageRejected("cert_untrusted", message) from e
    if len(leaves) != 1:
        raise PackageRejected(
            "signature_ambiguous", "KeyInfo holds several certificates and no single signer"
        )
    return leaves[0]


class _TreeVerifier(XMLVerifier):
    """signxml's verifier, given the tree our hardened parser made of the same bytes, which it
    consumes: the enveloped transform removes the signature from it.

    signxml copies the tree before it changes anything, by serializing and parsing it again
    (``_fromstring(_tostring(node))``, which keeps the namespaces a sub-element inherits), and
    copies the copy again before canonicalizing it. Parsing the bytes a second time would only
    repeat our parse, and the caller does not use the tree after verification, so a copy of
    the whole document (which has no namespaces to inherit) is the document itself; the
    signature and SignedInfo are still copied as signxml does.

    The certificate's dates are the trust store's to check, at the verification time and with
    precise codes (cert_expired, cert_not_yet_valid); signxml's own check is skipped."""

    @property
    def parser(self) -> etree.XMLParser:
        # signxml parses only what our hardened parser accepted already (the canonical signed
        # XML, copies of the signature): our parser, in the mode that takes large text nodes.
        return parser_for(HUGE_TEXT_BYTES + 1)

    def get_root(self, data: Any) -> Any:
        if isinstance(data, etree._Element):
            return data
        return super().get_root(data)  # type: ignore[no-untyped-call]

    def _tostring(self, xml_node: Any, **kwargs: Any) -> Any:
        if not kwargs and isinstance(xml_node, etree._Element) and xml_node.getparent() is None:
            return xml_node  # a whole document: _fromstring gives it back as it is
        return super()._tostring(xml_node, **kwargs)  # type: ignore[no-untyped-call]

    def _fromstring(self, xml_string: Any, **kwargs: Any) -> Any:
        if isinstance(xml_string, etree._Element):
            return xml_string
        return super()._fromstring(xml_string, **kwargs)  # type: ignore[no-untyped-call]

    def _check_cert_validity(self, cert: Any, cert_source: Any) -> None:
        pass


def _check_signature(
    root: etree._Element,
    leaf: x509.Certificate,
    profile: Profile,
    *,
    schema_checked: bool = False,
) -> etree._Element:
    """Cryptographic check by signxml: the signed XML (without the signature). ``root`` is
    consumed (the signature is removed from it); the caller
    checks the certificate with the trust store. ``schema_checked``: the strict schema has
    validated the signature (a stricter XMLDSig schema than signxml's own, which is then not
    run again)."""
    strict = profile is Profile.STRICT
    config = SignatureConfiguration(
        require_x509=True,
        location=_LOCATION,
        expect_references=1,
        signature_methods=STRICT_SIGNATURE_METHODS if strict else COMPAT_SIGNATURE_METHODS,
        digest_algorithms=STRICT_DIGESTS if strict else COMPAT_DIGESTS,
    )
    try:
        result = _TreeVerifier().verify(
            root, x509_cert=leaf, expect_config=config, validate_schema=not schema_checked
        )
    except InvalidDigest as e:
        raise PackageRejected(
            "signature_invalid", "the content does not match the signature (changed after signing)"
        ) from e
    except (SignXMLException, etree.DocumentInvalid, ValueError) as e:
        raise PackageRejected("signature_invalid", f"the signature does not verify: {e}") from e
    except etree.XMLSyntaxError as e:
        # signxml copies parts by serializing them as ASCII, which cannot spell every name
        raise PackageRejected("signature_invalid", f"the signature cannot be read: {e}") from e
    except UnsupportedAlgorithm as e:  # the certificate's key is of a type no one can check
        raise PackageRejected(
            "signature_invalid", f"the signer certificate's key cannot be used: {e}"
        ) from e
    except (TypeError, AttributeError, KeyError, IndexError) as e:
        # signxml on a malformed signature the XMLDSig schema lets through
        raise PackageRejected(
            "signature_invalid", f"the signature is malformed: {type(e).__name__}: {e}"
        ) from e
    assert isinstance(result, VerifyResult)  # expect_references=1 gives one result
    if result.signed_xml is None:
        raise PackageRejected("signature_invalid", "the signed data is not XML")
    return result.signed_xml


@dataclass(frozen=True, slots=True)
class SignedContent:
    """What ``verify_signature`` found: the tree to read and what is known of its signer."""

    tree: etree._Element  # the signed XML (without the signature); the parsed tree when unsigned
    state: SignatureState  # VALID here means: verified and trusted; the sender is checked later
    certificate: x509.Certificate | None
    sha256: str | None
    organ_ids: tuple[str, ...]  # the OrganIds the certificate names
    problem: PackageRejected | None  # compat: what strict would have raised


def verify_signature(
    data: bytes,
    trust: TrustStore,
    profile: Profile | str = Profile.STRICT,
    now: dt.datetime | None = None,
    *,
    limits: EnvelopeSettings = DEFAULT_LIMITS,
) -> SignedContent:
    """The signature part of ``verify_package`` on its own, without the envelope's checks:
    hardened parse, the signature's place and SignedInfo, signxml, certificate checks. Raises
    PackageRejected (xml_*, not_edxml, signature_*, cert_*)."""
    profile = Profile(profile)
    now = dt.datetime.now(dt.UTC) if now is None else now
    root = parse_xml(data, limits)
    if root.tag != names.ROOT:
        raise not_edxml(root)
    return _verify_tree(root, trust, profile, now)


def _verify_tree(
    root: etree._Element,
    trust: TrustStore,
    profile: Profile,
    now: dt.datetime,
    *,
    checked: bool = False,
) -> SignedContent:
    """Verify the signature of a parsed package, which it consumes. ``checked``: the envelope
    has found the package valid, so in strict its schema stands for the signature's place,
    SignedInfo's shape and algorithms, and for signxml's own XMLDSig schema."""
    schema_checked = checked and profile is Profile.STRICT
    if schema_checked:
        header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
        assert header is not None
        found: etree._Element | SignatureState = header[-1]  # the schema placed it last
    else:
        found = _signature(root, profile)
    if isinstance(found, SignatureState):
        message = (
            "the package is not signed"
            if found is SignatureState.ABSENT
            else "the package's Signature is not W3C XMLDSig"
        )
        return SignedContent(
            root, found, None, None, (), PackageRejected("signature_missing", message)
        )
    sig = found
    if profile is Profile.STRICT:
        _check_no_unsigned_nodes(root)
    weak = False if schema_checked else policy.check_signed_info(sig, profile)
    certs = _signer_certificates(sig)
    if not certs:
        missing = PackageRejected(
            "cert_untrusted", "the signature carries no X.509 certificate in KeyInfo"
        )
        if profile is Profile.STRICT:
            raise missing
        return SignedContent(root, SignatureState.UNTRUSTED, None, None, (), missing)
    leaf = _leaf(certs)
    signed = _check_signature(root, leaf, profile, schema_checked=schema_checked)
    try:
        signer = trust.check_signer(leaf, now, [c for c in certs if c is not leaf])
    except PackageRejected as e:
        if profile is Profile.STRICT:
            raise
        state = (
            SignatureState.WEAK_ALGORITHM
            if e.code == "signature_weak_algorithm"
            else SignatureState.UNTRUSTED
        )
        sha256 = leaf.fingerprint(SHA256()).hex()
        return SignedContent(signed, state, leaf, sha256, organ_ids(leaf), e)
    if weak:
        problem = PackageRejected(
            "signature_weak_algorithm", "the signature uses SHA-1 or another weak algorithm"
        )
        return SignedContent(
            signed, SignatureState.WEAK_ALGORITHM, leaf, signer.sha256, signer.organ_ids, problem
        )
    return SignedContent(signed, SignatureState.VALID, leaf, signer.sha256, signer.organ_ids, None)


def speaks_for(
    code: str, cert_sha256: str, cert_organ_ids: tuple[str, ...], directory: Directory
) -> bool:
    """Whether a signer certificate may speak for unit ``code``: the unit's pinned
    certificates when the directory pins any, else the OrganIds the certificate names."""
    unit = directory.get(code)
    pins = unit.cert_sha256 if unit is not None else ()
    return cert_sha256 in pins if pins else code in cert_organ_ids


def _check_sender(
    sender: str, content: SignedContent, directory: Directory, profile: Profile
) -> tuple[bool, PackageRejected | None]:
    """Whether the signer is bound to ``sender`` (From/OrganId); sender_* problems (raised in
    strict)."""
    unit = directory.get(sender)
    if unit is None and profile is Profile.STRICT:
        raise PackageRejected("sender_unknown", f"the sender {sender} is not in the unit directory")
    if unit is not None and not unit.active:
        raise PackageRejected("sender_suspended", f"the sender {sender} ({unit.name}) is suspended")
    if content.certificate is None:
        return False, None
    if speaks_for(sender, content.sha256 or "", content.organ_ids, directory):
        return True, None
    how = "is not pinned for" if unit is not None and unit.cert_sha256 else "does not name"
    mismatch = PackageRejected(
        "sender_mismatch", f"the signer certificate {how} the sender {sender}"
    )
    if profile is Profile.STRICT:
        raise mismatch
    return False, mismatch


def verify_package(
    data: bytes | BinaryIO,
    trust: TrustStore,
    directory: Directory,
    profile: Profile | str = Profile.STRICT,
    now: dt.datetime | None = None,
    *,
    limits: EnvelopeSettings = DEFAULT_LIMITS,
) -> VerifiedPackage:
    """Verify a package: the envelope's checks (``gateway.envelope.check``), then the
    signature, the signer's certificate and its binding to the sender; the model is read from
    the signed content only, when first asked for.

    Raises PackageRejected with a catalogue code: signature_* or cert_* when the signature
    fails, else everything ``check`` raises, then sender_*. ``now`` defaults to the current
    time (UTC). ``data`` may be an open binary file holding the package (a large body spooled
    to disk): a valid strict document is then verified from the file, with the bytes read
    only when the model is."""
    profile = Profile(profile)
    now = dt.datetime.now(dt.UTC) if now is None else now
    tree = parse_xml(data, limits, check_depth=False)  # kept whole: the signature covers it
    try:
        reading = check(data, profile, limits, tree=tree, unchecked_depth=limits.max_depth)
    except PackageRejected as refused:
        if tree.tag == names.ROOT and not refused.code.startswith("xml_"):
            # Content changed after signing usually breaks the envelope's rules too: when the
            # signature fails, its code names what happened.
            _verify_tree(tree, trust, profile, now)
        raise
    del tree  # the reading holds it until verification consumes it
    content = _verify_tree(reading.tree, trust, profile, now, checked=True)
    reading = reading.of(content.tree)  # the signed XML
    bound, mismatch = _check_sender(reading.sender, content, directory, profile)
    problem = content.problem or mismatch
    state = content.state
    if state is SignatureState.VALID and mismatch is not None:
        state = SignatureState.UNTRUSTED
    if profile is Profile.COMPAT and state not in _UNSIGNED:
        reading = reading.of(content.tree, _compat_warnings(reading.warnings, state, problem))
    signer = reading.sender if bound else next(iter(content.organ_ids), None)
    return VerifiedPackage(
        reading,
        state,
        signer,
        content.sha256,
        problem.code if problem else None,
        problem.message if problem else None,
        content.certificate,
    )


def _compat_warnings(
    warnings: tuple[PackageWarning, ...], state: SignatureState, problem: PackageRejected | None
) -> tuple[PackageWarning, ...]:
    """The envelope's warnings with its guesses about the signature replaced by what
    verification found."""
    kept = tuple(w for w in warnings if not w.code.startswith("signature_"))
    if problem is None:
        return kept
    code = (
        "signature_weak_algorithm"
        if state is SignatureState.WEAK_ALGORITHM
        else "signature_untrusted"
    )
    return (*kept, PackageWarning(code, f"{problem.code}: {problem.message}"))
