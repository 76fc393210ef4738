"""``sign_package``: an enveloped XMLDSig signature as the last child of edXMLHeader.

One Reference ``URI=""`` (the whole document), the enveloped-signature and exclusive C14N
transforms, SHA-256 digests, RSA-SHA256 or ECDSA-SHA256, and the signer certificate (then any
intermediates given) in KeyInfo/X509Data. signxml does the XMLDSig work.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from gateway.config import EnvelopeSettings
from gateway.envelope import names
from gateway.envelope.parse import not_edxml, package_kind
from gateway.envelope.xmlsafe import parse_xml, parser_for
from gateway.errors import PackageRejected
from gateway.trust.pki import PrivateKey, SigningKey

EXCLUSIVE_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
DEFAULT_LIMITS = EnvelopeSettings()


def signature_method(key: PrivateKey) -> SignatureMethod:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SignatureMethod.ECDSA_SHA256
    if isinstance(key, rsa.RSAPrivateKey):
        return SignatureMethod.RSA_SHA256
    raise TypeError(f"{type(key).__name__} keys cannot sign edXML packages; use an EC or RSA key")


def sign_package(
    data: bytes,
    key: SigningKey,
    cert: x509.Certificate,
    *,
    chain: Sequence[x509.Certificate] = (),
    limits: EnvelopeSettings = DEFAULT_LIMITS,
) -> bytes:
    """Sign an unsigned edXML package or status packet; the signed bytes (UTF-8, with an XML
    declaration). Raises PackageRejected if the bytes are not edXML or are already signed."""
    method = signature_method(key)
    root = parse_xml(data, limits)
    if package_kind(root) is None:
        raise not_edxml(root)
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    if header is None:
        raise PackageRejected("not_edxml", "the package has no edXMLEnvelope/edXMLHeader")
    if next(root.iter(names.DS_SIGNATURE), None) is not None:
        raise PackageRejected("signature_ambiguous", "the package is already signed")
    # signxml puts the signature where this placeholder is: the last child of edXMLHeader.
    etree.SubElement(header, names.DS_SIGNATURE, {"Id": "placeholder"}, nsmap={"ds": names.DS_NS})
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=EXCLUSIVE_C14N,
    )
    # signxml copies the tree by serializing and parsing it: with our parser, which takes the
    # large text node of a scanned attachment (signxml's own refuses one over 10 MB).
    signer._parser = parser_for(len(data))  # type: ignore[assignment]
    signed = signer.sign(root, key=key, cert=[cert, *chain])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
