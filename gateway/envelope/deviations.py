"""Compat's named warnings: the schema's errors inside a package's header, and the state of
its signature, said without verifying it.

Real systems send headers with elements missing, empty, repeated, out of order or unknown. The
compat profile reads such a package as long as it can still be routed, so each schema error
inside ``edXMLHeader`` (MessageHeader or Status, TraceHeaderList, the Bussiness block) becomes
a warning that names the element and its path, and the reader takes what is there. Everything
else stays an error: the envelope's skeleton, the body and the attachments (what a recipient
receives), a value that is present but wrong (a date that is no date, an unknown StatusCode),
and the signature, whose policy has its own codes. The reader refuses, with their own codes,
a package left without a sender, a recipient or a DocumentId, whatever this module says.

The errors come from libxml2's log; whether an unexpected element is out of order or unknown,
and which missing children are required, is read from the compat schemas themselves, so the
schemas stay the one description of the structure.
"""

from __future__ import annotations

import copy as copy_module
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.envelope import names
from gateway.envelope.model import PackageWarning
from gateway.envelope.schema import SCHEMA_DIR, element_at, is_constraint_error, where
from gateway.envelope.signature import weak_algorithms

_XS = "{http://www.w3.org/2001/XMLSchema}"
_COMPOSITORS = frozenset(f"{_XS}{local}" for local in ("sequence", "choice", "all", "group"))
_CONSTRAINT = re.compile(r"identity-constraint '(?:\{[^}]*\})?(\w+)'")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( (.*) \)")
_CLARK = re.compile(r"\{[^}]*\}")
_KEY_SEQUENCE = re.compile(r"key-sequence \['(.*)'\]")

# The warning codes, one per kind of deviation.
ELEMENT_MISSING = "element_missing"
ELEMENT_EMPTY = "element_empty"
ELEMENT_REPEATED = "element_repeated"
ELEMENT_OUT_OF_ORDER = "element_out_of_order"
ELEMENT_UNKNOWN = "element_unknown"


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _content(
    node: etree._Element, groups: dict[str, etree._Element], required: bool = True
) -> Iterator[tuple[str, bool]]:
    """The elements a content model (complexType, compositor, group) admits, each with whether
    it is required (not optional itself, nor inside an optional compositor or a choice)."""
    for child in node.iterchildren(tag=etree.Element):
        needed = required and child.get("minOccurs") != "0"
        if child.tag == f"{_XS}element":
            yield child.get("name") or (child.get("ref") or "").rpartition(":")[2], needed
        elif child.tag == f"{_XS}group" and child.get("ref"):
            group = groups[(child.get("ref") or "").rpartition(":")[2]]
            yield from _content(group, groups, needed)
        elif child.tag in _COMPOSITORS or child.tag == f"{_XS}complexType":
            yield from _content(child, groups, needed and child.tag != f"{_XS}choice")


@dataclass(frozen=True, slots=True)
class Children:
    """What the compat schemas say of an element name's children, over all its declarations
    (Code in MessageHeader is complex, in ResponseFor not): the names any admits, and those
    every one requires."""

    admitted: frozenset[str]
    required: frozenset[str]


@functools.cache
def schema_children() -> dict[str, Children]:
    """For each element name of the compat schemas with element content, its Children."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    docs = [
        etree.parse(str(SCHEMA_DIR / name), parser).getroot()
        for name in ("edxml-common.xsd", "edxml-profile-compat.xsd")
    ]
    types = {t.get("name"): t for d in docs for t in d.iterchildren(f"{_XS}complexType")}
    groups = {str(g.get("name")): g for d in docs for g in d.iterchildren(f"{_XS}group")}
    found: dict[str, Children] = {}
    for doc in docs:
        for el in doc.iter(f"{_XS}element"):
            name = el.get("name")
            ctype = el.find(f"{_XS}complexType")
            if ctype is None:
                ctype = types.get((el.get("type") or "").removeprefix("e:"))
            if not name or ctype is None:
                continue
            content = list(_content(ctype, groups))
            admitted = frozenset(n for n, _ in content)
            required = frozenset(n for n, needed in content if needed)
            known = found.get(name)
            if known is not None:
                admitted, required = admitted | known.admitted, required & known.required
            found[name] = Children(admitted, required)
    return found


def _in_header(el: etree._Element) -> bool:
    """Whether ``el`` is edXMLHeader or inside it, and not a signature or inside one."""
    node: etree._Element | None = el
    while node is not None:
        if _local(node) == "Signature":
            return False
        if node.tag == names.HEADER:
            return True
        node = node.getparent()
    return False


def _textless(el: etree._Element) -> bool:
    """No text of its own (around any children) but XML whitespace: no value."""
    own = (el.text or "") + "".join(c.tail or "" for c in el)
    return not own.strip(names.XML_SPACE)


def _warning(code: str, message: str, el: etree._Element) -> PackageWarning:
    return PackageWarning(code, f"{message} ({where(el)})")


def _unexpected(el: etree._Element, message: str) -> PackageWarning:
    """An element where the schema expects none: repeated, out of order (naming what the
    schema expected first, when that comes later) or unknown."""
    parent = el.getparent()
    assert parent is not None  # the root is always expected
    local, parent_local = _local(el), _local(parent)
    if any(s.tag == el.tag for s in el.itersiblings(preceding=True)):
        return _warning(ELEMENT_REPEATED, f"{parent_local} has more than one {local}", el)
    if etree.QName(el).namespace == names.NS and _admits(parent_local, local):
        later = [_local(s) for s in el.itersiblings() if _local(s) in _expected(message)]
        before = f" (before {', '.join(later)})" if later else ""
        return _warning(
            ELEMENT_OUT_OF_ORDER, f"{local} is out of order in {parent_local}{before}", el
        )
    return _warning(ELEMENT_UNKNOWN, f"{parent_local} has an unknown element {local}", el)


def _admits(parent: str, child: str) -> bool:
    children = schema_children().get(parent)
    return children is not None and child in children.admitted


def _missing(el: etree._Element, message: str) -> PackageWarning:
    """The children the schema requires of ``el`` that it lacks (libxml2 lists what it
    would have accepted next, optional ones too)."""
    m = _EXPECTED.search(message)
    expected = [] if m is None else _CLARK.sub("", m[1]).split(", ")
    children = schema_children().get(_local(el))
    present = {_local(c) for c in el.iterchildren(tag=etree.Element)}
    lacking = [
        n for n in expected if n not in present and (children is None or n in children.required)
    ]
    what = ", ".join(lacking) if lacking else f"one of {', '.join(expected)}"
    return _warning(ELEMENT_MISSING, f"{_local(el)} has no {what}", el)


def _constraint(el: etree._Element, error: Any) -> PackageWarning | None:
    """A MessageHeader count (<Name>Once, <Name>AtMostOnce) or a recipient named twice."""
    m = _CONSTRAINT.search(error.message)
    counted = "" if m is None else m[1].removesuffix("AtMostOnce").removesuffix("Once")
    if "Duplicate key-sequence" in error.message:
        value = _KEY_SEQUENCE.search(error.message)
        named = value[1] if value else "?"
        return _warning(ELEMENT_REPEATED, f"{_local(el)} names {named} again", el)
    if "Not all fields" in error.message:
        if next(el.iterchildren(names.tag(counted)), None) is not None:
            return None  # present with a value the schema refuses: that error says so
        return _warning(ELEMENT_MISSING, f"{_local(el)} has no {counted}", el)
    counted_el = next((a for a in el.iterancestors() if _local(a) == counted), el)
    parent = counted_el.getparent()
    owner = "" if parent is None else _local(parent)
    return _warning(ELEMENT_REPEATED, f"{owner} has more than one {counted}", counted_el)


def _deviation(el: etree._Element, error: Any) -> PackageWarning | bool | None:
    """The warning for one schema error inside the header; None when another error of the
    same fault says it; False when it stays an error."""
    if is_constraint_error(error):
        if "No precomputed value" in error.message:
            return None  # the element's value error says it
        return _constraint(el, error)
    if "This element is not expected" in error.message:
        return _unexpected(el, error.message)
    if "Missing child element(s)" in error.message:
        if len(el) == 0 and _textless(el):
            return _warning(ELEMENT_EMPTY, f"{_local(el)} is empty", el)
        return _missing(el, error.message)
    if "Character content other than whitespace is not allowed" in error.message:
        return _warning(ELEMENT_UNKNOWN, f"{_local(el)} holds text where only elements belong", el)
    if "Element content is not allowed" in error.message:
        children = ", ".join(_local(c) for c in el.iterchildren(tag=etree.Element))
        return _warning(
            ELEMENT_UNKNOWN, f"{_local(el)} holds {children}, where only text belongs", el
        )
    if _textless(el):
        return _warning(ELEMENT_EMPTY, f"{_local(el)} is empty", el)
    return False  # a value that is there and wrong


@dataclass(frozen=True, slots=True)
class _Relocated:
    """A schema error found on a working copy of the tree, located on the original element
    (what ``schema.schema_rejection`` reads of an error)."""

    type_name: str
    message: str
    path: str
    line: int | None


# libxml2 validates nothing after an unexpected element in the same parent, so the header is
# validated again, on a copy without the unexpected elements, until none is left; a package
# that needs more rounds than this is refused with its first unexpected element.
MAX_ROUNDS = 20


class _Deviations:
    """The warnings and the remaining errors of one tree, gathered round by round."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.warnings: list[PackageWarning] = []
        self.kept: list[Any] = []
        self._seen: set[object] = set()  # errors and warnings already given

    def round(
        self, work: etree._Element, original: dict[Any, etree._Element], errors: list[Any]
    ) -> list[tuple[etree._Element, Any]]:
        """Take in one round's errors on ``work`` (``original`` maps its elements to the
        root's, empty on the root itself); its unexpected elements, with their errors."""
        unexpected = []
        for error in errors:
            found = element_at(work, error.path) if error.path else None
            el = original.get(found, found) if found is not None else None
            in_header = el is not None and _in_header(el)
            if work is not self.root:  # the first round gave everything outside the header
                if el is None or not in_header or (error.message, el) in self._seen:
                    continue
                line = el.sourceline
                error = _Relocated(
                    error.type_name,
                    error.message,
                    _path_of(el),
                    line if isinstance(line, int) else None,
                )
            if el is not None:
                self._seen.add((error.message, el))
            deviation = _deviation(el, error) if el is not None and in_header else False
            if deviation is False:
                self.kept.append(error)
            elif isinstance(deviation, PackageWarning):
                self.add(deviation, el)
            if found is not None and in_header and "This element is not expected" in error.message:
                unexpected.append((found, error))
        return unexpected

    def add(self, warning: PackageWarning, el: etree._Element | None) -> None:
        """A warning, unless it was given already."""
        if _key(warning, el) not in self._seen:
            self._seen.add(_key(warning, el))
            self.warnings.append(warning)


def header_deviations(
    root: etree._Element, errors: list[Any], validate: Callable[[etree._Element], list[Any]]
) -> tuple[list[PackageWarning], list[Any]]:
    """The compat warnings for the schema's errors inside edXMLHeader, and the errors that
    stay errors (in their order). ``validate`` gives the schema's errors on a tree: libxml2
    leaves the rest of a parent unvalidated after an unexpected element, so the header is
    validated again without the unexpected elements (on a copy: nothing of the package
    changes) until every element that is read has been validated."""
    found = _Deviations(root)
    work, original = root, dict[Any, etree._Element]()
    unexpected = found.round(work, original, errors)
    for _ in range(MAX_ROUNDS):
        if not unexpected:
            return found.warnings, found.kept
        copy = copy_module.deepcopy(work)
        pairs = list(zip(work.iter(), copy.iter(), strict=True))
        original = {c: original.get(w, w) for w, c in pairs}
        in_copy = dict(pairs)
        for el, error in unexpected:
            for gone in _set_aside(in_copy[el], error.message):
                found.add(_unexpected(original[gone], error.message), original[gone])
        work = copy
        unexpected = found.round(work, original, validate(work))
    return found.warnings, [error for _, error in unexpected] + found.kept


def _key(warning: PackageWarning, el: etree._Element | None) -> object:
    """What makes a warning new: an element is out of order, unknown or repeated once, however
    often a round of validation meets it; anything else by its message."""
    if warning.code in (ELEMENT_OUT_OF_ORDER, ELEMENT_UNKNOWN, ELEMENT_REPEATED):
        return (warning.code, el)
    return warning.message


def _set_aside(el: etree._Element, message: str) -> list[etree._Element]:
    """An unexpected element of the working copy set aside so that the rest of its parent is
    validated: when it is out of order, moved after the later sibling the schema expected
    first, or else one place back (its content is then validated too); else removed, with
    every other unknown sibling or every later repetition of it at once (libxml2 reports one
    per parent and round): those are returned, to be named too."""
    parent = el.getparent()
    assert parent is not None  # an unexpected element has a parent
    local, parent_local = _local(el), _local(parent)
    if any(s.tag == el.tag for s in el.itersiblings(preceding=True)):
        doomed = [s for s in el.itersiblings() if s.tag == el.tag]
    elif etree.QName(el).namespace == names.NS and _admits(parent_local, local):
        later = [s for s in el.itersiblings() if _local(s) in _expected(message)]
        before = el.getprevious()
        if later:
            later[-1].addnext(el)
            return []
        if before is not None:  # nothing expected after it: one step back, each round
            before.addprevious(el)
            return []
        doomed = []
    else:
        doomed = [
            s
            for s in parent.iterchildren(tag=etree.Element)
            if etree.QName(s).namespace != names.NS or not _admits(parent_local, _local(s))
        ]
    for s in doomed:
        parent.remove(s)
    if el not in doomed:
        parent.remove(el)
    return doomed


def _expected(message: str) -> set[str]:
    """The element names a libxml2 message says were expected."""
    m = _EXPECTED.search(message)
    return set() if m is None else set(_CLARK.sub("", m[1]).split(", "))


def _path_of(el: etree._Element) -> str:
    return str(el.getroottree().getpath(el))


def signature_warnings(header: etree._Element) -> list[PackageWarning]:
    """Compat only: say what is wrong with the signature without verifying it."""
    signatures = [
        c for c in header if isinstance(c.tag, str) and etree.QName(c).localname == "Signature"
    ]
    if not signatures:
        return [PackageWarning("signature_absent", "the package is not signed")]
    sig = signatures[-1]
    if sig.tag != names.DS_SIGNATURE:
        ns = etree.QName(sig).namespace or "no namespace"
        return [_warning("signature_not_xmldsig", f"Signature is in {ns}, not W3C XMLDSig", sig)]
    weak = weak_algorithms(sig)
    if weak:
        return [PackageWarning("signature_weak_algorithm", f"the signature uses {', '.join(weak)}")]
    return []
