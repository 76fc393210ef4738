"""A corpus of broken signatures, looped over by one test: every element of a valid signature
deleted, emptied, filled with junk, or its attributes replaced. The verifier must answer each
with a catalogue code (never another exception), and whatever it accepts must read exactly as
what was signed."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from lxml import etree
from trustkit import NOW, SENDER, Pki, document_from

from gateway.envelope import names
from gateway.errors import CODES, PackageRejected
from gateway.trust import SignatureState, verify_package

MUTATIONS = ("delete", "empty", "junk", "attributes")


def mutated(signed: bytes) -> Iterator[tuple[str, bytes]]:
    base = etree.fromstring(signed)
    sig = base.find(f".//{names.DS_SIGNATURE}")
    assert sig is not None
    count = len(list(sig.iter(tag=etree.Element)))
    for index in range(count):
        for mutation in MUTATIONS:
            root = copy.deepcopy(base)
            copy_sig = root.find(f".//{names.DS_SIGNATURE}")
            assert copy_sig is not None
            el = list(copy_sig.iter(tag=etree.Element))[index]
            if mutation == "delete":
                parent = el.getparent()
                assert parent is not None
                parent.remove(el)
            elif mutation == "empty":
                el.text = None
                for child in list(el):
                    el.remove(child)
            elif mutation == "junk":
                el.text = "!!not base64@@"
            else:
                if not el.attrib:
                    continue
                for name in el.attrib:
                    el.set(name, "urn:junk")
            name = f"{etree.QName(el).localname}[{index}]:{mutation}"
            yield name, etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("profile", ["strict", "compat"])
def test_every_broken_signature_gets_a_catalogue_code(profile: str) -> None:
    kit = Pki()
    original = document_from(SENDER)
    trust, directory = kit.trust(), kit.directory()
    seen: dict[str, int] = {}
    accepted = 0
    for name, data in mutated(kit.signed(SENDER, original)):
        try:
            result = verify_package(data, trust, directory, profile, NOW)
        except PackageRejected as e:
            assert e.code in CODES, name
            seen[e.code] = seen.get(e.code, 0) + 1
            continue
        accepted += 1
        assert result.package == original, name
        if profile == "strict":
            assert result.signature_state is SignatureState.VALID, name
    assert {"signature_invalid", "signature_ambiguous"} <= set(seen)
    assert seen["signature_invalid"] >= 20
    # Only mutations that change nothing the signature depends on are accepted in strict
    # (emptying an element that has no text or children, like CanonicalizationMethod).
    assert accepted < 10 if profile == "strict" else accepted < 20
