"""Hardened XML parsing: refuse what is too big, too deep or hostile before any of it is expanded.

Order of the checks, cheapest first: size cap on the bytes; UTF-8 only (so that a byte scan of
the prolog is sound); no DOCTYPE (hence no DTD and no entity declarations) in the prolog; then
libxml2 with entities, DTD loading, network access and huge trees all off; then limits on depth
and node count. Nothing here opens a file or a socket (a caller may hand in a file it opened).
"""

from __future__ import annotations

import re
import threading
from typing import Any, BinaryIO

from lxml import etree

from gateway.config import EnvelopeSettings
from gateway.errors import CodeName, PackageRejected

# libxml2 reads encodings from BOMs and the XML declaration; edXML is UTF-8, and refusing the
# rest keeps the prolog scan below honest (a UTF-16 "<!DOCTYPE" would not match bytes).
_FOREIGN_BOMS = (b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_XML_DECL = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
# What may precede the root element: whitespace, the declaration, comments, PIs.
_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


# libxml2 refuses a text node over 10,000,000 bytes unless its "huge" mode is on; a scanned
# attachment is one such node (50 MiB is 70 MB of base64). Documents that could hold one take
# the huge-mode parser: it lifts libxml2's own size limits only; what makes XML hostile stays
# refused here (a DOCTYPE, hence any DTD or entity; depth and node limits, counted below).
HUGE_TEXT_BYTES = 10_000_000


def _hardened_parser(*, content_only: bool, huge: bool = False) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=huge,
        collect_ids=False,
        remove_blank_text=content_only,
        remove_comments=content_only,
        remove_pis=content_only,
    )


class _PerThread(threading.local):
    """lxml parsers and compiled XPath objects must not be shared between threads."""

    def __init__(self) -> None:
        self.parser = _hardened_parser(content_only=False)
        # For readers of the content only: no comments or processing instructions (the text
        # around one is one text node, the element's whole value, as the schema and XPath see
        # it), and no whitespace between elements (a leaf's whitespace-only text is kept).
        self.content_parser = _hardened_parser(content_only=True)
        self.huge_parser = _hardened_parser(content_only=False, huge=True)
        self.huge_content_parser = _hardened_parser(content_only=True, huge=True)
        self.count_nodes = etree.XPath("count(//node()) + count(//@*)")
        self.too_deep: dict[int, etree.XPath] = {}

    def too_deep_check(self, depth: int) -> etree.XPath:
        check = self.too_deep.get(depth)
        if check is None:
            # True when any element sits at depth + 1 below the document node.
            check = etree.XPath("boolean(/" + "/".join(["*"] * (depth + 1)) + ")")
            self.too_deep[depth] = check
        return check


_local = _PerThread()


def _check_encoding(data: bytes) -> None:
    if data.startswith(_FOREIGN_BOMS) or data[:2] in (b"\x00<", b"<\x00"):
        raise PackageRejected("xml_malformed", "edXML packages must be encoded in UTF-8")
    head = data[:200]
    declared = _XML_DECL.match(head.removeprefix(b"\xef\xbb\xbf"))
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        enc = declared.group(1).decode("ascii")
        raise PackageRejected(
            "xml_malformed", f"edXML packages must be encoded in UTF-8, not {enc}", where="line 1"
        )


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE before the root element, without parsing anything else."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    prolog = _PROLOG.match(data, start)
    pos = prolog.end() if prolog else start
    if data.startswith((b"<!DOCTYPE", b"<!ENTITY"), pos):
        line = data.count(b"\n", 0, pos) + 1
        raise PackageRejected(
            "xml_forbidden_construct",
            "DOCTYPE declarations (and with them DTDs and entities) are not allowed",
            where=f"line {line}",
        )


def parse_xml(
    data: bytes | BinaryIO,
    limits: EnvelopeSettings,
    *,
    check_depth: bool = True,
    content_only: bool = False,
) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise PackageRejected with an xml_* code.

    ``data`` may be an open binary file the caller made (a large body spooled to disk): it is
    read in pieces from its start, and its prolog must then fit in the first 64 KiB.
    ``check_depth=False`` leaves the depth limit to the caller (``check_tree_depth``), for a
    caller that knows a cheaper proof (a tree valid under the strict schemas is shallow).
    ``content_only`` drops comments, processing instructions and whitespace between elements:
    for reading, never for signing or verifying (the canonical form keeps them)."""
    if not isinstance(data, bytes):
        size, head, elements = _scan_file(data)
    else:
        size, head, elements = len(data), data, data.count(b"<")
    if size > limits.max_bytes:
        raise PackageRejected(
            "xml_too_large", f"{size} bytes is over the limit of {limits.max_bytes} bytes"
        )
    if not head or head.isspace():
        raise PackageRejected("xml_malformed", "the document is empty")
    _check_encoding(head)
    _check_prolog(head)
    # Every element starts with "<": more of them than nodes allowed is refused before libxml2
    # builds any (a flat flood of tiny elements costs it ~30 bytes of memory per input byte).
    if elements > limits.max_nodes:
        raise PackageRejected(
            "xml_too_deep", f"more than {limits.max_nodes} elements (the limit of nodes)"
        )
    parser = parser_for(size, content_only=content_only)
    try:
        if not isinstance(data, bytes):
            data.seek(0)
            root = etree.parse(data, parser).getroot()
        else:
            root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        message = str(e.msg or e)
        code: CodeName = "xml_too_deep" if "depth" in message.lower() else "xml_malformed"
        if "entity" in message.lower() and "undefined" not in message.lower():
            code = "xml_forbidden_construct"
        raise PackageRejected(code, message, where=f"line {e.lineno}") from e
    if root is None:
        raise PackageRejected("xml_malformed", "the document has no root element")
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise PackageRejected("xml_forbidden_construct", "DOCTYPE declarations are not allowed")
    if check_depth:
        check_tree_depth(root, limits.max_depth)
    _check_nodes(root, size, limits.max_nodes)
    return root


_HEAD = 64 * 1024


def _scan_file(f: BinaryIO) -> tuple[int, bytes, int]:
    """Size, first 64 KiB and number of "<" of a file, read in pieces. A prolog that does not
    end within the head is refused: the DOCTYPE check must see all of it."""
    f.seek(0)
    head = f.read(_HEAD)
    count = head.count(b"<")
    while chunk := f.read(1024 * 1024):
        count += chunk.count(b"<")
    size = f.tell()
    if size > len(head):
        prolog = _PROLOG.match(head, 3 if head.startswith(b"\xef\xbb\xbf") else 0)
        if prolog is not None and prolog.end() == len(head):
            raise PackageRejected("xml_malformed", "the prolog is longer than 64 KiB")
    return size, head, count


def parser_for(size: int, *, content_only: bool = False) -> etree.XMLParser:
    """The hardened parser for a document of ``size`` bytes (this thread's own)."""
    if size > HUGE_TEXT_BYTES:
        return _local.huge_content_parser if content_only else _local.huge_parser
    return _local.content_parser if content_only else _local.parser


def check_tree_depth(root: etree._Element, max_depth: int) -> None:
    if _local.too_deep_check(max_depth)(root):
        raise PackageRejected("xml_too_deep", f"elements are nested deeper than {max_depth} levels")


def _check_nodes(root: etree._Element, size: int, max_nodes: int) -> None:
    # Every element or attribute takes at least 4 bytes ("<a/>", ' a=""') and there is at most
    # one text node per element, so a document this small cannot hold too many nodes.
    if size < 2 * max_nodes:
        return
    nodes = int(_local.count_nodes(root))  # type: ignore[arg-type]
    if nodes > max_nodes:
        raise PackageRejected("xml_too_deep", f"{nodes} nodes is over the limit of {max_nodes}")
