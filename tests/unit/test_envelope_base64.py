"""names.decode_base64 against a reference: base64 with XML whitespace (space, tab, CR, LF)
allowed anywhere, decoded as the standard library decodes the text without it."""

from __future__ import annotations

import base64
import re
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.envelope import names

XML_SPACE = " \t\r\n"
ALPHABET = string.ascii_letters + string.digits + "+/"
_WELL_FORMED = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def without_xml_space(text: str) -> str:
    return text.translate({ord(c): None for c in XML_SPACE})


def reference_accepts(text: str) -> bool:
    """Valid base64 once XML whitespace is removed: the alphabet, then at most two '=', in
    whole groups of four characters."""
    significant = without_xml_space(text)
    return _WELL_FORMED.fullmatch(significant) is not None and len(significant) % 4 == 0


def insert(text: str, insertions: list[tuple[int, str]]) -> str:
    """``text`` with each (position, string) inserted at that position of the original."""
    for position, extra in sorted(insertions, key=lambda i: i[0], reverse=True):
        text = text[:position] + extra + text[position:]
    return text


xml_space = st.text(XML_SPACE, min_size=1, max_size=4)


@st.composite
def spaced_encodings(draw: st.DrawFn) -> tuple[bytes, str]:
    """Some bytes, and their base64 with XML whitespace inserted anywhere except between two
    '=' (see test_whitespace_between_the_two_padding_characters_is_allowed)."""
    data = draw(st.binary(max_size=200))
    encoded = base64.b64encode(data).decode("ascii")
    gaps = [i for i in range(len(encoded) + 1) if encoded[i - 1 : i + 1] != "=="]
    insertions = draw(st.lists(st.tuples(st.sampled_from(gaps), xml_space), max_size=12))
    return data, insert(encoded, insertions)


@settings(max_examples=300, deadline=None)
@given(spaced_encodings())
@example((b"\xfb\xff", "+/8=\r\n"))
@example((b"", " \t\r\n"))
def test_xml_whitespace_anywhere_decodes_to_the_bytes(case: tuple[bytes, str]) -> None:
    data, text = case
    assert names.decode_base64(text) == data


@pytest.mark.parametrize("text", ["QQ= =", "QQ=\r\n=", "QUJD QQ=\t=\n"])
def test_whitespace_between_the_two_padding_characters_is_allowed(text: str) -> None:
    assert names.decode_base64(text) == base64.b64decode(without_xml_space(text), validate=True)


# Near-valid texts are where a decoder goes wrong: base64 with one character added, dropped or
# replaced, and short texts over the alphabet, padding, whitespace and a few other characters.
_NEAR = ALPHABET[:6] + "+/=" + XML_SPACE + "-_.!*~"
printable = st.text(st.sampled_from(_NEAR) | st.characters(min_codepoint=32, max_codepoint=126))


@st.composite
def edited_encodings(draw: st.DrawFn) -> str:
    encoded = base64.b64encode(draw(st.binary(max_size=40))).decode("ascii")
    position = draw(st.integers(0, len(encoded)))
    edit = draw(st.sampled_from(["insert", "drop", "replace"]))
    char = draw(st.sampled_from(_NEAR))
    keep = position + 1 if edit in ("drop", "replace") else position
    return encoded[:position] + ("" if edit == "drop" else char) + encoded[keep:]


@settings(max_examples=400, deadline=None)
@given(printable | edited_encodings())
@example("QUJD=")
@example("QUJ==")
@example("QQ===")
@example("====")
@example("QQ==QQ==")
@example("Q=Q=")
@example("QR==")  # nonzero unused bits: accepted, as by the standard library
@example("  ")
def test_decode_fails_exactly_when_the_reference_refuses(text: str) -> None:
    if reference_accepts(text):
        expected = base64.b64decode(without_xml_space(text), validate=True)
        assert names.decode_base64(text) == expected
    else:
        with pytest.raises(ValueError):
            names.decode_base64(text)


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode("ascii")),
    st.data(),
    st.characters(min_codepoint=0x80),
)
def test_a_character_outside_ascii_anywhere_is_refused(
    encoded: str, data: st.DataObject, char: str
) -> None:
    position = data.draw(st.integers(0, len(encoded)))
    with pytest.raises(ValueError):
        names.decode_base64(encoded[:position] + char + encoded[position:])


@pytest.mark.parametrize(
    "text",
    [
        "QUJD\u00a0",
        "QU\u2003JD",
        "QUJD\x85",
        "QUJD\u2028",
        "\ufeffQUJD",
        "ＱＵＪＤ",
        "QUJ\u00e9RA==",
    ],
    ids=["nbsp", "em-space", "nel", "line-separator", "bom", "fullwidth", "e-acute"],
)
def test_unicode_spaces_and_lookalikes_are_refused(text: str) -> None:
    # str.split() would drop the first four; only XML whitespace may be ignored.
    with pytest.raises(ValueError):
        names.decode_base64(text)


@pytest.mark.parametrize("text", ["QUJD\x0b", "QU\x0cJD"], ids=["vertical-tab", "form-feed"])
def test_ascii_space_that_is_not_xml_whitespace_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        names.decode_base64(text)
