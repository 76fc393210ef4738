"""Names and formats of the edXML vocabulary: namespaces, Clark-notation tags, and the textual
formats (OrganId, DocumentId, dates) that the schema leaves to code."""

from __future__ import annotations

import re
import string
from datetime import date, datetime

import pybase64

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"


def tag(local: str) -> str:
    """Clark notation of an edXML element name."""
    return f"{{{NS}}}{local}"


ROOT = tag("edXML")
ENVELOPE = tag("edXMLEnvelope")
HEADER = tag("edXMLHeader")
MESSAGE_HEADER = tag("MessageHeader")
STATUS = tag("Status")
TRACE_LIST = tag("TraceHeaderList")
BODY = tag("edXMLBody")
MANIFEST = tag("edXMLManifest")
ATTACHMENTS = tag("AttachmentEncoded")
DS_SIGNATURE = f"{{{DS_NS}}}Signature"

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"

# NNN.NN.NN.Lnn: three numeric groups and a level-1 group of one capital letter and two digits.
ORGAN_ID = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
# <issuer OrganId>,<yyyy/MM/dd>,<number>/<notation>; the number holds no '/', the notation may.
DOCUMENT_ID = re.compile(
    r"(?P<organ_id>[^,]+),(?P<date>[0-9]{4}/[0-9]{2}/[0-9]{2}),(?P<number>[^/,]+)/(?P<notation>[^,]+)"
)


def is_organ_id(value: str) -> bool:
    return ORGAN_ID.fullmatch(value) is not None


def format_date(value: date) -> str:
    return value.strftime(DATE_FORMAT)


def format_timestamp(value: datetime) -> str:
    return value.strftime(TIMESTAMP_FORMAT)


_DATE = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}")
_TIMESTAMP = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


class FormatError(ValueError):
    """A date or timestamp text not even in the format (as opposed to a format-valid text that
    names no real date, a plain ValueError)."""


def parse_date(value: str) -> date:
    """A yyyy/MM/dd text as a date; FormatError or ValueError if it is not a real date."""
    if _DATE.fullmatch(value) is None:
        raise FormatError(f"{value!r} is not yyyy/MM/dd")
    return date(int(value[0:4]), int(value[5:7]), int(value[8:10]))


def parse_timestamp(value: str) -> datetime:
    """A 'yyyy/MM/dd HH:mm:ss' text as a naive datetime; FormatError or ValueError if it is
    not real."""
    if _TIMESTAMP.fullmatch(value) is None:
        raise FormatError(f"{value!r} is not yyyy/MM/dd HH:mm:ss")
    return datetime(
        int(value[0:4]),
        int(value[5:7]),
        int(value[8:10]),
        int(value[11:13]),
        int(value[14:16]),
        int(value[17:19]),
    )


# XML's whitespace (what xs:token collapses and normalize-space trims; a no-break space is not).
XML_SPACE = " \t\r\n"

_B64_ALPHABET = (string.ascii_letters + string.digits + "+/").encode("ascii")


def decode_base64(text: str) -> bytes:
    """The bytes of base64 text (XML whitespace allowed anywhere).

    ValueError when the text is not valid base64: a character outside the alphabet, padding
    that is not at the end, or a length that is not a whole number of 4-character groups.
    Text without whitespace, the common case, is checked and decoded in one SIMD pass."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        pass
    # Whitespace (MIME line breaks) or an error: find which, then decode without whitespace.
    try:
        compact = text.encode("ascii").translate(None, XML_SPACE.encode("ascii"))
    except UnicodeEncodeError:
        raise ValueError("a character outside the base64 alphabet") from None
    padding = compact.translate(None, _B64_ALPHABET)  # only the padding, if valid
    if padding.strip(b"="):
        raise ValueError("a character outside the base64 alphabet")
    if len(padding) > 2 or not compact.endswith(padding):
        raise ValueError("padding ('=') that is not at the end")
    if len(compact) % 4:
        raise ValueError(f"{len(compact)} base64 characters, not a multiple of 4")
    return pybase64.b64decode(compact, validate=True)


_XML_SPACE_RUN = re.compile(f"[{XML_SPACE}]+")


def collapse(value: str) -> str:
    """XSD whitespace collapse (what xs:token values compare as): runs of XML whitespace become
    one space, none at the ends."""
    return _XML_SPACE_RUN.sub(" ", value).strip(" ")


def make_document_id(organ_id: str, promulgation_date: date, number: str, notation: str) -> str:
    return f"{organ_id},{format_date(promulgation_date)},{number}/{notation}"
