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
from gateway.errors import ConfigError, PackageRejected


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


def is_value_error(error: Any) -> bool:
    """Whether a schema error is one of its value checks rather than a structural error."""
    if error.type_name == "SCHEMAV_CVC_IDC":
        return True
    m = _ERROR_ELEMENT.match(error.message)
    return error.type_name in _VALUE_FAILURES and m is not None and m[1] in _VALUE_ELEMENTS


def schema_rejection(root: etree._Element, error: Any) -> PackageRejected:
    """schema_invalid naming one schema error, its line and its path."""
    location = f"line {error.line}"
    if error.path:
        location = f"line {error.line}, {error.path}"
        found = _element_at(root, error.path)
        if found is not None:
            location = where(found)
    message = error.message.replace(f"{{{_ns(root)}}}", "")
    return PackageRejected("schema_invalid", message, where=location)


def _element_at(root: etree._Element, path: str) -> etree._Element | None:
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
