"""The edXML schemas: loaded from disk once per thread (never fetched), and validation that
reports the first error with its line and path. The XSDs are ``schemas/`` at the top of the
source tree; an installed gateway carries them as ``gateway/envelope/schemas``."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.envelope.model import Kind, Profile
from gateway.envelope.names import tag
from gateway.errors import CodeName, ConfigError, PackageRejected


def _schema_dir() -> Path:
    here = Path(__file__).resolve().parent
    installed = here / "schemas"  # a wheel puts them beside this module
    return installed if installed.is_dir() else here.parents[1] / "schemas"  # the source tree


SCHEMA_DIR = _schema_dir()


def schema_path(kind: Kind, profile: Profile) -> Path:
    return SCHEMA_DIR / f"edxml-{kind.value}-{profile.value}.xsd"


def _load(path: Path) -> etree.XMLSchema:
    # The schema files import each other by relative path; a no-network parser keeps it local.
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as e:
        raise ConfigError(f"cannot load the edXML schema {path}: {e}") from e


class _Schemas(threading.local):
    """XMLSchema keeps its error log on the instance, so each thread gets its own."""

    def __init__(self) -> None:
        self.loaded: dict[tuple[Kind, Profile], etree.XMLSchema] = {}

    def get(self, kind: Kind, profile: Profile) -> etree.XMLSchema:
        schema = self.loaded.get((kind, profile))
        if schema is None:
            schema = self.loaded[(kind, profile)] = _load(schema_path(kind, profile))
        return schema


_schemas = _Schemas()


def load_schema(kind: Kind, profile: Profile) -> etree.XMLSchema:
    return _schemas.get(kind, profile)


def element_path(el: etree._Element) -> str:
    """A readable path of local names with positions where needed: /edXML/.../To[2]/OrganId."""
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def where(el: etree._Element) -> str:
    return f"line {el.sourceline}, {element_path(el)}"


def schema_errors(root: etree._Element, kind: Kind, profile: Profile) -> list[Any]:
    """The schema's errors on a tree, in document order; empty when it is valid."""
    schema = load_schema(kind, profile)
    if schema.validate(root):
        return []
    log: Any = schema.error_log  # the stubs miss that the log is a sequence
    return list(log)


# The schema's value checks (formats, known codes, counts, pairings) that the validator reports
# under their own error codes: facet failures of these elements and identity constraints.
_VALUE_FAILURES = frozenset(
    {
        "SCHEMAV_CVC_PATTERN_VALID",
        "SCHEMAV_CVC_ENUMERATION_VALID",
        "SCHEMAV_CVC_DATATYPE_VALID_1_2_1",
    }
)
_VALUE_ELEMENTS = frozenset(
    {"OrganId", "DocumentId", "PromulgationDate", "DueDate", "Timestamp", "StatusCode"}
)
_ERROR_ELEMENT = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")


def is_constraint_error(error: Any) -> bool:
    """Whether a schema error is an identity constraint's (counts, pairings, uniqueness)."""
    return bool(error.type_name == "SCHEMAV_CVC_IDC")


def constraint_failure(root: etree._Element, errors: list[Any]) -> PackageRejected | None:
    """The first identity constraint that fails in its own right, under its own code.

    A value the schema refuses (an OrganId out of format) has no value for the keys: libxml2
    then warns and reports a <Name>Once key as unmatched. Those are left to the value error,
    which the reading names precisely."""
    for error in errors:
        if not is_constraint_error(error) or "No precomputed value" in error.message:
            continue
        if "Not all fields" in error.message:
            counted = _constrained(error).removesuffix("Once")
            header = element_at(root, error.path) if error.path else None
            if header is not None and next(header.iterchildren(tag(counted)), None) is not None:
                continue  # present, with a value the schema refuses
        return constraint_rejection(root, error)
    return None


def _constrained(error: Any) -> str:
    m = _CONSTRAINT.search(error.message)
    return "" if m is None else m[1] or m[2]


def is_value_error(error: Any) -> bool:
    """Whether a schema error is one of its value checks rather than a structural error."""
    if is_constraint_error(error):
        return True
    m = _ERROR_ELEMENT.match(error.message)
    return error.type_name in _VALUE_FAILURES and m is not None and m[1] in _VALUE_ELEMENTS


def schema_rejection(root: etree._Element, error: Any) -> PackageRejected:
    """schema_invalid naming one schema error, its line and its path."""
    message = error.message.replace(f"{{{_ns(root)}}}", "")
    return PackageRejected("schema_invalid", message, where=_location(root, error))


# The schema's identity constraints (schemas/edxml-common.xsd, edxml-document.xsd) by name:
# the catalogue code of a failure and its message, given the key's value and, for the
# <Name>Once and <Name>AtMostOnce counts, whether the element is missing or repeated.
CONSTRAINTS: dict[str, tuple[CodeName, str]] = {
    "RecipientOnce": ("recipient_duplicate", "{value} is named twice as a recipient"),
    "AttachmentOfReference": ("attachment_missing", "manifest reference {value} has no attachment"),
    "ManifestReference": (
        "attachment_missing",
        "manifest reference {value} is listed twice; each attachment is listed once",
    ),
    "ReferenceOfAttachment": (
        "attachment_unreferenced",
        "attachment {value} is not listed in the manifest",
    ),
    "EncodedAttachment": (
        "attachment_unreferenced",
        "attachment {value} appears twice; the manifest lists each attachment once",
    ),
}
_CONSTRAINT = re.compile(r"identity-constraint '(?:\{[^}]*\})?(\w+)'|keyref '(?:\{[^}]*\})?(\w+)'")
_KEY_SEQUENCE = re.compile(r"key-sequence \['(.*)'\]")


def constraint_rejection(root: etree._Element, error: Any) -> PackageRejected:
    """An identity constraint's failure (SCHEMAV_CVC_IDC) under its own code: a recipient
    named twice, a manifest reference or an attachment without its pair, a MessageHeader child
    missing or repeated (schema_invalid naming it); schema_invalid for any other."""
    name = _constrained(error)
    location = _location(root, error)
    if name in CONSTRAINTS:
        code, template = CONSTRAINTS[name]
        value = _KEY_SEQUENCE.search(error.message)
        text = template.format(value=value[1] if value else "?")
        return PackageRejected(code, text, where=location)
    counted = name.removesuffix("AtMostOnce").removesuffix("Once")
    if counted != name:
        if "more than one" in error.message:
            text = f"MessageHeader has more than one {counted}"
        else:
            text = f"MessageHeader has no {counted}"
        return PackageRejected("schema_invalid", text, where=location)
    return schema_rejection(root, error)


def _location(root: etree._Element, error: Any) -> str:
    """The line and readable path of a schema error: from libxml2's path when it gives one,
    else (a keyref, checked at the end of its scope) the element it names on that line."""
    found = None if not error.path else element_at(root, error.path)
    named = _ERROR_ELEMENT.match(error.message)
    if found is None and named is not None:
        found = next(
            (
                el
                for el in root.iter(tag=etree.Element)
                if el.sourceline == error.line and etree.QName(el).localname == named[1]
            ),
            None,
        )
    if found is not None:
        return where(found)
    return f"line {error.line}, {error.path}" if error.path else f"line {error.line}"


def element_at(root: etree._Element, path: str) -> etree._Element | None:
    """The element libxml2's error path names (its prefixes are the document's own)."""
    prefixes = {p: ns for el in root.iter(tag=etree.Element) for p, ns in el.nsmap.items() if p}
    try:
        found = root.getroottree().xpath(path, namespaces=prefixes)
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


def _ns(root: etree._Element) -> str:
    return etree.QName(root).namespace or ""
