"""Names and formats of the edXML vocabulary: namespaces, Clark-notation tags, and the textual
formats (OrganId, DocumentId, dates) that the schema leaves to code."""

from __future__ import annotations

import re
from datetime import date, datetime

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


def parse_date(value: str) -> date:
    """A yyyy/MM/dd text as a date; ValueError if it is not a real date."""
    return datetime.strptime(value, DATE_FORMAT).date()


def parse_timestamp(value: str) -> datetime:
    """A 'yyyy/MM/dd HH:mm:ss' text as a naive datetime; ValueError if it is not real."""
    return datetime.strptime(value, TIMESTAMP_FORMAT)


def make_document_id(organ_id: str, promulgation_date: date, number: str, notation: str) -> str:
    return f"{organ_id},{format_date(promulgation_date)},{number}/{notation}"
