"""The signature policy, in one place: where the one signature sits, the shape of its
SignedInfo, the XMLDSig algorithms a package may use, those the compat profile still verifies
but records as weak, the canonicalizations and transforms, and how a weak algorithm is
recognised. ``schemas/xmldsig.xsd`` admits exactly the strict lists (a test checks it); the
envelope's checks and ``gateway.trust.verify`` use this module. Nothing here verifies a
signature: that is ``gateway.trust``'s job.
"""

from __future__ import annotations

from lxml import etree

from gateway.envelope import names
from gateway.envelope.model import Profile
from gateway.envelope.schema import where
from gateway.errors import PackageRejected

_DS = f"{{{names.DS_NS}}}"

_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_MORE07 = "http://www.w3.org/2007/05/xmldsig-more#"
_MORE21 = "http://www.w3.org/2021/04/xmldsig-more#"
_ENC = "http://www.w3.org/2001/04/xmlenc#"
_DSIG = "http://www.w3.org/2000/09/xmldsig#"

# Strict: SHA-256 or stronger (SHA-2 and SHA-3), RSA (PKCS#1 v1.5 or PSS) or ECDSA.
SIGNATURE_METHODS = frozenset(
    {
        *(f"{_MORE}{kind}-sha{bits}" for kind in ("rsa", "ecdsa") for bits in (256, 384, 512)),
        *(f"{_MORE07}sha{bits}-rsa-MGF1" for bits in (256, 384, 512)),
        *(f"{_MORE07}sha3-{bits}-rsa-MGF1" for bits in (224, 256, 384, 512)),
        *(f"{_MORE21}ecdsa-sha3-{bits}" for bits in (224, 256, 384, 512)),
    }
)
DIGEST_METHODS = frozenset(
    {
        f"{_ENC}sha256",
        f"{_MORE}sha384",
        f"{_ENC}sha512",
        *(f"{_MORE07}sha3-{bits}" for bits in (224, 256, 384, 512)),
    }
)
# Compat also verifies what legacy systems sign with: SHA-1 and SHA-224 (recorded as a weak
# signature); never HMAC (a shared secret proves no signer) or DSA.
WEAK_SIGNATURE_METHODS = frozenset(
    {
        f"{_DSIG}rsa-sha1",
        f"{_MORE}ecdsa-sha1",
        f"{_MORE07}sha1-rsa-MGF1",
        f"{_MORE}rsa-sha224",
        f"{_MORE}ecdsa-sha224",
        f"{_MORE07}sha224-rsa-MGF1",
    }
)
WEAK_DIGEST_METHODS = frozenset({f"{_DSIG}sha1", f"{_MORE}sha224"})

CANONICALIZATIONS = frozenset(
    {
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    }
)
ENVELOPED_SIGNATURE = f"{_DSIG}enveloped-signature"
TRANSFORMS = CANONICALIZATIONS | {ENVELOPED_SIGNATURE}

# Hash names that make an algorithm weak, wherever a URI names them (known or not).
_WEAK_HASHES = ("sha1", "sha224", "md5", "ripemd160")


def is_weak(uri: str) -> bool:
    """True for an algorithm URI that rests on SHA-1 or weaker (SHA-224 counts as weak)."""
    fragment = uri.rsplit("#", 1)[-1].rsplit("/", 1)[-1].lower()
    return any(part in _WEAK_HASHES for part in fragment.split("-"))  # sha1-rsa-MGF1 too


def weak_algorithms(signature: etree._Element) -> list[str]:
    """The weak algorithm URIs of a ds:Signature's SignatureMethod and DigestMethod."""
    found = signature.iter(f"{_DS}SignatureMethod", f"{_DS}DigestMethod")
    return [uri for el in found if is_weak(uri := el.get("Algorithm", ""))]


def _own_header(root: etree._Element) -> etree._Element | None:
    return root.find(f"{names.ENVELOPE}/{names.HEADER}")


def signature_element(root: etree._Element, profile: Profile = Profile.STRICT) -> etree._Element:
    """The one W3C signature: a direct child of the package's own edXMLHeader, in strict its
    last. Raises signature_missing when there is none and signature_ambiguous for several
    signatures or one in any other place (the shapes of signature-wrapping attacks)."""
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
    header = _own_header(root)
    if header is None or sig.getparent() is not header:
        raise PackageRejected(
            "signature_ambiguous",
            "the signature must be a child of the package's own edXMLHeader",
            where=where(sig),
        )
    if profile is Profile.STRICT and list(header.iterchildren(tag=etree.Element))[-1] is not sig:
        raise PackageRejected(
            "signature_ambiguous",
            "the signature must be the last child of edXMLHeader",
            where=where(sig),
        )
    return sig


def check_signed_info(sig: etree._Element, profile: Profile) -> bool:
    """The shape of SignedInfo: one Reference URI="" (the whole document), the
    enveloped-signature transform and canonicalizations only, values present, known
    algorithms. Raises signature_ambiguous, signature_invalid or (strict)
    signature_weak_algorithm; True when compat accepts a weak algorithm."""
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
    if ENVELOPED_SIGNATURE not in transforms:
        raise PackageRejected(
            "signature_invalid", "the Reference lacks the enveloped-signature transform"
        )
    for algorithm in transforms:
        if algorithm not in TRANSFORMS:
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
    for el, strong, weaker in (
        (method, SIGNATURE_METHODS, WEAK_SIGNATURE_METHODS),
        (digest, DIGEST_METHODS, WEAK_DIGEST_METHODS),
    ):
        uri = "" if el is None else el.get("Algorithm", "")
        if uri in strong:
            continue
        if uri in weaker:
            if profile is Profile.STRICT:
                raise PackageRejected(
                    "signature_weak_algorithm",
                    f"the signature uses {uri}; SHA-256 or stronger is required",
                    where=where(el) if el is not None else None,
                )
            weak = True
            continue
        raise PackageRejected(
            "signature_invalid", f"the signature algorithm {uri!r} is not supported"
        )
    return weak


def check_signature_policy(
    root: etree._Element, profile: Profile = Profile.STRICT
) -> etree._Element | None:
    """The one signature in its place and its SignedInfo's shape, with strong algorithms in
    strict; in compat the same of a W3C signature if there is one (None when there is none),
    weak algorithms allowed."""
    if profile is Profile.COMPAT and next(root.iter(names.DS_SIGNATURE), None) is None:
        return None
    sig = signature_element(root, profile)
    check_signed_info(sig, profile)
    return sig
