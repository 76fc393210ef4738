"""The signature policy, in one place: the XMLDSig algorithms a package may use, those the
compat profile still verifies but records as weak, the canonicalizations and transforms, and
how a weak algorithm is recognised. ``schemas/xmldsig.xsd`` admits exactly the strict lists
(a test checks it); ``gateway.envelope.read`` and ``gateway.trust.verify`` use these sets.
(Where the one signature sits, the last child of edXMLHeader, is ``parse.signature_element``.)
"""

from __future__ import annotations

from lxml import etree

from gateway.envelope import names

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
    ds = f"{{{names.DS_NS}}}"
    found = signature.iter(f"{ds}SignatureMethod", f"{ds}DigestMethod")
    return [uri for el in found if is_weak(uri := el.get("Algorithm", ""))]
