"""``verify_package``: the strict XMLDSig check (docs/trust.md) over signxml, and the model
built from the signed XML only.

Order: hardened parse; one W3C signature, a direct child of edXMLHeader (the last in
``strict``); one Reference ``URI=""`` with only enveloped-signature and C14N transforms;
algorithms; the signer certificate from KeyInfo; the cryptographic check by signxml (a new
verifier per call, the certificate pinned, the location pinned); the certificate against the
trust store (chain cached per certificate, CRL); the model read from signxml's ``signed_xml``;
the sender against the directory and the certificate.

In ``compat`` the failures that legacy and relayed packets show become a recorded
``signature_state`` instead of a rejection; a signature that does not match its content
(``signature_invalid``) and an ambiguous signature are always rejected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import threading
from base64 import b64decode
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidDigest, SignXMLException
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from gateway.config import EnvelopeSettings
from gateway.directory import Directory
from gateway.envelope import Kind, Package, PackageWarning, Profile, names, read_tree
from gateway.envelope import signature as policy
from gateway.envelope.parse import (
    STRICT_DEPTH,
    check_signature_policy,
    header_first,
    not_edxml,
    read_valid_document,
)
from gateway.envelope.schema import schema_errors
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
# (strict, compat) algorithm URIs of SignatureMethod, then of DigestMethod
_METHOD_URIS = (
    policy.SIGNATURE_METHODS,
    policy.SIGNATURE_METHODS | policy.WEAK_SIGNATURE_METHODS,
)
_DIGEST_URIS = (policy.DIGEST_METHODS, policy.DIGEST_METHODS | policy.WEAK_DIGEST_METHODS)


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
    """A verified package: the model from the signed XML and what is known of its signer."""

    package: Package
    signature_state: SignatureState
    signer: str | None  # the OrganId the certificate speaks for (None when unknown)
    cert_sha256: str | None  # SHA-256 fingerprint of the signer certificate
    problem: str | None = None  # compat: the error code strict would have raised
    message: str | None = None  # compat: its message
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return self.signature_state is SignatureState.VALID


@functools.lru_cache(maxsize=4096)
def _certificate(text: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(b64decode("".join(text.split()), validate=True))


def _signature(root: etree._Element, profile: Profile) -> etree._Element | SignatureState:
    """The one W3C signature of the package, or (compat) the state of a package without one."""
    if profile is Profile.STRICT:
        sig = check_signature_policy(root)
        # check_signature_policy accepts the last child of any edXMLHeader; a whole signed
        # package nested in another one has such a header too, but not the top one.
        if sig.getparent() is not root.find(f"{names.ENVELOPE}/{names.HEADER}"):
            raise PackageRejected(
                "signature_ambiguous",
                "the signature must be a child of the package's own edXMLHeader",
                where=f"line {sig.sourceline}",
            )
        return sig
    signatures = list(root.iter(names.DS_SIGNATURE))
    if not signatures:
        others = any(
            etree.QName(el).localname == "Signature" for el in root.iter(tag=etree.Element)
        )
        return SignatureState.NOT_XMLDSIG if others else SignatureState.ABSENT
    if len(signatures) > 1:
        raise PackageRejected(
            "signature_ambiguous",
            f"the package has {len(signatures)} signatures; exactly one is allowed",
            where=f"line {signatures[1].sourceline}",
        )
    sig = signatures[0]
    parent = sig.getparent()
    grandparent = parent.getparent() if parent is not None else None
    if (
        parent is None
        or parent.tag != names.HEADER
        or grandparent is None
        or grandparent.getparent() is not root
    ):
        raise PackageRejected(
            "signature_ambiguous",
            "the signature must be a child of edXMLHeader",
            where=f"line {sig.sourceline}",
        )
    return sig


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


def _check_signed_info(sig: etree._Element, profile: Profile) -> bool:
    """Check the shape of SignedInfo; True when it uses a weak (compat-only) algorithm."""
    signed_info = sig.find(f"{_DS}SignedInfo")
    if signed_info is None:
        raise PackageRejected("signature_invalid", "the signature has no SignedInfo")
    references = signed_info.findall(f"{_DS}Reference")
    if len(references) != 1:
        raise PackageRejected(
            "signature_ambiguous",
            f'the signature has {len(references)} references; exactly one (URI="") is allowed',
            where=f"line {sig.sourceline}",
        )
    reference = references[0]
    if reference.get("URI") != "":
        raise PackageRejected(
            "signature_ambiguous",
            f'the signature\'s Reference URI is {reference.get("URI")!r}; only URI="" '
            "(the whole document) is allowed",
            where=f"line {reference.sourceline}",
        )
    transforms = [
        t.get("Algorithm", "") for t in reference.iterfind(f"{_DS}Transforms/{_DS}Transform")
    ]
    if policy.ENVELOPED_SIGNATURE not in transforms:
        raise PackageRejected(
            "signature_invalid", "the Reference lacks the enveloped-signature transform"
        )
    for algorithm in transforms:
        if algorithm not in policy.TRANSFORMS:
            raise PackageRejected(
                "signature_invalid", f"the transform {algorithm!r} is not allowed"
            )
    for local, parent in (("SignatureValue", sig), ("DigestValue", reference)):
        value = parent.find(f"{_DS}{local}")
        if value is None or not (value.text or "").strip():
            raise PackageRejected("signature_invalid", f"the signature's {local} is empty")
    weak = False
    method = signed_info.find(f"{_DS}SignatureMethod")
    digest = reference.find(f"{_DS}DigestMethod")
    for el, (strict, compat) in ((method, _METHOD_URIS), (digest, _DIGEST_URIS)):
        uri = "" if el is None else el.get("Algorithm", "")
        if uri in strict:
            continue
        if uri in compat:
            if profile is Profile.STRICT:
                raise PackageRejected(
                    "signature_weak_algorithm",
                    f"the signature uses {uri}; SHA-256 or stronger is required",
                )
            weak = True
            continue
        raise PackageRejected(
            "signature_invalid", f"the signature algorithm {uri!r} is not supported"
        )
    return weak


def _signer_certificates(sig: etree._Element) -> list[x509.Certificate]:
    texts = [
        el.text or "" for el in sig.iterfind(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    ]
    certs = []
    for text in texts:
        try:
            certs.append(_certificate(text))
        except ValueError as e:
            raise PackageRejected(
                "signature_invalid", "an X509Certificate of the signature is not a certificate"
            ) from e
    return certs


def _leaf(certs: list[x509.Certificate]) -> x509.Certificate:
    """The signer certificate: the one that issued none of the others."""
    if len(certs) == 1:
        return certs[0]
    leaves = [c for c in certs if not any(o is not c and o.issuer == c.subject for o in certs)]
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
) -> tuple[etree._Element, etree._Element]:
    """Cryptographic check by signxml: the signed XML (without the signature) and a copy of the
    signature element. ``root`` is consumed (the signature is removed from it); the caller
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
    except (TypeError, AttributeError, KeyError, IndexError) as e:
        # signxml on a malformed signature the XMLDSig schema lets through
        raise PackageRejected(
            "signature_invalid", f"the signature is malformed: {type(e).__name__}: {e}"
        ) from e
    assert isinstance(result, VerifyResult)  # expect_references=1 gives one result
    if result.signed_xml is None:
        raise PackageRejected("signature_invalid", "the signed data is not XML")
    return result.signed_xml, result.signature_xml


def _restore_signature(signed: etree._Element, signature: etree._Element, index: int) -> None:
    """Put the verified signature back where it was in the signed XML.

    The enveloped transform removes the signature from what signxml returns, but the strict
    schema requires it in edXMLHeader (and compat reads its algorithms); the reader never takes
    content from it."""
    header = signed.find(f"{names.ENVELOPE}/{names.HEADER}")
    if header is None:
        raise PackageRejected("signature_invalid", "the signed XML has no edXMLHeader")
    header.insert(index, signature)


@dataclass(frozen=True, slots=True)
class SignedContent:
    """What ``verify_signature`` found: the tree to read and what is known of its signer."""

    tree: etree._Element  # the signed XML (signature restored); the parsed bytes when unsigned
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
    """The signature part of ``verify_package``: hardened parse, signature policy, signxml,
    certificate checks. Raises PackageRejected (xml_*, not_edxml, signature_*, cert_*)."""
    profile = Profile(profile)
    now = dt.datetime.now(dt.UTC) if now is None else now
    root = parse_xml(data, limits)
    if root.tag != names.ROOT:
        raise not_edxml(root)
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
    weak = _check_signed_info(sig, profile)
    certs = _signer_certificates(sig)
    if not certs:
        missing = PackageRejected(
            "cert_untrusted", "the signature carries no X.509 certificate in KeyInfo"
        )
        if profile is Profile.STRICT:
            raise missing
        return SignedContent(root, SignatureState.UNTRUSTED, None, None, (), missing)
    leaf = _leaf(certs)
    index = list(cast(etree._Element, sig.getparent()).iterchildren(tag=etree.Element)).index(sig)
    signed, signature = _check_signature(root, leaf, profile)
    _restore_signature(signed, signature, index)
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
    pins = unit.cert_sha256 if unit is not None else ()
    bound = content.sha256 in pins if pins else sender in content.organ_ids
    if bound:
        return True, None
    how = "is not pinned for" if pins else "does not name"
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
    """Verify a signed package and read it from its signed content only.

    Raises PackageRejected with a catalogue code (everything ``parse_package`` raises, and
    signature_*, cert_*, sender_*). ``now`` defaults to the current time (UTC). ``data`` may be
    an open binary file holding the package (a large body spooled to disk): a valid strict
    document is then verified from the file, with the bytes read only once its trees are done
    with; anything else is read into memory and takes the checked path."""
    profile = Profile(profile)
    now = dt.datetime.now(dt.UTC) if now is None else now
    if profile is Profile.STRICT:
        verified = _verify_valid_document(data, trust, directory, now, limits)
        if verified is not None:
            return verified
    if not isinstance(data, bytes):
        data.seek(0)
        data = data.read()
    content = verify_signature(data, trust, profile, now, limits=limits)
    signed = content.certificate is not None
    package = read_tree(content.tree, data, profile, signature_checked=signed)
    bound, mismatch = _check_sender(package.sender.organ_id, content, directory, profile)
    problem = content.problem or mismatch
    state = content.state
    if state is SignatureState.VALID and mismatch is not None:
        state = SignatureState.UNTRUSTED
    if profile is Profile.COMPAT and state not in _UNSIGNED:
        package = _compat_warnings(package, state, problem)
    signer = package.sender.organ_id if bound else next(iter(content.organ_ids), None)
    return VerifiedPackage(
        package,
        state,
        signer,
        content.sha256,
        problem.code if problem else None,
        problem.message if problem else None,
        content.certificate,
    )


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.sender = etree.XPath("normalize-space(e:From/e:OrganId)", namespaces={"e": names.NS})


_local = _PerThread()


def _verify_valid_document(
    data: bytes | BinaryIO,
    trust: TrustStore,
    directory: Directory,
    now: dt.datetime,
    limits: EnvelopeSettings,
) -> VerifiedPackage | None:
    """``verify_package`` of a strict document that passes: its result, or None at the first
    fault, which the checked path (verify_signature, read_tree) then names.

    The strict schema, validated first on the parsed bytes, stands for the signature policy
    (one signature, its place, one Reference URI="", transforms, algorithms) and for signxml's
    own XMLDSig schema; signxml's signed XML is the same content without the signature, so it
    is read without validating it again."""
    try:
        root = parse_xml(data, limits, check_depth=limits.max_depth < STRICT_DEPTH)
        first = header_first(root)
        if first is None or first.tag != names.MESSAGE_HEADER:
            return None
        if schema_errors(root, Kind.DOCUMENT, Profile.STRICT):
            return None
        _check_no_unsigned_nodes(root)
        header = first.getparent()
        assert header is not None
        certs = _signer_certificates(header[-1])  # the schema placed the signature last
        if not certs:
            return None
        leaf = _leaf(certs)
        signed, _ = _check_signature(root, leaf, Profile.STRICT, schema_checked=True)
        del root, first, header  # the parsed bytes: a scan's copy is no longer needed
        signer = trust.check_signer(leaf, now, [c for c in certs if c is not leaf])
        message = header_first(signed)
        if message is None:
            return None
        package = read_valid_document(signed, message, data)
        if package is None:
            return None
        content = SignedContent(
            signed, SignatureState.VALID, leaf, signer.sha256, signer.organ_ids, None
        )
        sender = str(_local.sender(message))
        _check_sender(sender, content, directory, Profile.STRICT)  # raises unless bound
    except PackageRejected:
        return None
    return VerifiedPackage(package, SignatureState.VALID, sender, signer.sha256, certificate=leaf)


def _compat_warnings(
    package: Package, state: SignatureState, problem: PackageRejected | None
) -> Package:
    # The envelope's signature warnings were computed on the signed XML, from which the
    # enveloped transform removed the signature: replace them with what verification found.
    kept = tuple(w for w in package.warnings if not w.code.startswith("signature_"))
    if problem is None:
        return dataclasses.replace(package, warnings=kept)
    code = (
        "signature_weak_algorithm"
        if state is SignatureState.WEAK_ALGORITHM
        else "signature_untrusted"
    )
    return dataclasses.replace(
        package, warnings=(*kept, PackageWarning(code, f"{problem.code}: {problem.message}"))
    )
