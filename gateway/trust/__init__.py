"""Trust: the development PKI, the trust store (CAs, CRLs, cached chain checks), signing, and
the strict verification of signed packages. Pure except the small loaders of ``keyfiles``."""

from gateway.trust.keyfiles import (
    GatewaySigner,
    KeysLayout,
    init_keys,
    issue_unit,
    load_gateway_signer,
    load_trust,
    load_unit_signer,
    reissue_crl,
    revoke_unit,
    rotate_unit,
)
from gateway.trust.pki import fingerprint, organ_ids
from gateway.trust.sign import sign_package
from gateway.trust.store import Signer, TrustStore
from gateway.trust.verify import (
    SignatureState,
    SignedContent,
    VerifiedPackage,
    verify_package,
    verify_signature,
)

__all__ = [
    "GatewaySigner",
    "KeysLayout",
    "SignatureState",
    "SignedContent",
    "Signer",
    "TrustStore",
    "VerifiedPackage",
    "fingerprint",
    "init_keys",
    "issue_unit",
    "load_gateway_signer",
    "load_trust",
    "load_unit_signer",
    "organ_ids",
    "reissue_crl",
    "revoke_unit",
    "rotate_unit",
    "sign_package",
    "verify_package",
    "verify_signature",
]
