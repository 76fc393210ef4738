"""The strict XSDs against the code that relies on them: no wildcard and a nesting depth of
parse.STRICT_DEPTH (which lets a valid document skip the depth check), the same algorithm
lists as gateway.trust.verify, the same status codes and formats as the model, real dates."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree
from samples import mutated, sample_document, set_text

from gateway.envelope import Profile, names, parse, parse_package
from gateway.envelope import signature as policy
from gateway.envelope.model import STATUS_CODES
from gateway.envelope.schema import SCHEMA_DIR
from gateway.errors import PackageRejected
from gateway.trust import verify

XS = "http://www.w3.org/2001/XMLSchema"
PARSER = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)

# The files each strict top-level schema is made of (its xs:include and xs:import closure).
DOCUMENT_FILES = (
    "edxml-common.xsd",
    "edxml-profile-strict.xsd",
    "edxml-document.xsd",
    "xmldsig.xsd",
    "exc-c14n.xsd",
)
# edxml-status-strict.xsd only declares the root edXML (as StatusPacketType).
STATUS_FILES = (
    "edxml-common.xsd",
    "edxml-profile-strict.xsd",
    "edxml-status-strict.xsd",
    "xmldsig.xsd",
    "exc-c14n.xsd",
)


def xs(local: str) -> str:
    return f"{{{XS}}}{local}"


def load(file: str) -> etree._Element:
    return etree.parse(str(SCHEMA_DIR / file), PARSER).getroot()


class UnboundedSchema(AssertionError):
    """The schema admits content of unbounded depth (recursion, a wildcard or xs:anyType)."""


def resolve(at: etree._Element, qname: str) -> str:
    """A QName attribute value of ``at`` in Clark notation, by ``at``'s namespace declarations."""
    prefix, _, local = qname.rpartition(":")
    namespace = at.nsmap.get(prefix or None)
    if prefix and namespace is None:
        raise AssertionError(f"undeclared prefix in {qname!r} (line {at.sourceline})")
    return f"{{{namespace}}}{local}" if namespace else local


@dataclass
class Declarations:
    """The global declarations of one kind's schema files, by Clark name."""

    elements: dict[str, etree._Element] = field(default_factory=dict)
    complex_types: dict[str, etree._Element] = field(default_factory=dict)
    simple_types: dict[str, etree._Element] = field(default_factory=dict)
    groups: dict[str, etree._Element] = field(default_factory=dict)

    @classmethod
    def of(cls, schemas: Iterable[etree._Element]) -> Declarations:
        found = cls()
        tables = {
            xs("element"): found.elements,
            xs("complexType"): found.complex_types,
            xs("simpleType"): found.simple_types,
            xs("group"): found.groups,
        }
        for schema in schemas:
            namespace = schema.get("targetNamespace")
            for decl in schema.iterchildren(*tables):
                name = f"{{{namespace}}}{decl.get('name')}" if namespace else str(decl.get("name"))
                table = tables[str(decl.tag)]
                # Two edXML roots would mean the files of both kinds were loaded together.
                assert name not in table, f"{name} is declared twice"
                table[name] = decl
        return found


class DepthWalk:
    """The deepest element path that a schema admits below an element declaration."""

    def __init__(self, decls: Declarations) -> None:
        self.decls = decls
        self.open: list[str] = []  # named declarations being expanded, outermost first

    def _enter(self, name: str, walk: Callable[[], list[str]]) -> list[str]:
        if name in self.open:
            raise UnboundedSchema("recursive declaration: " + " -> ".join([*self.open, name]))
        self.open.append(name)
        try:
            return walk()
        finally:
            self.open.pop()

    def element(self, decl: etree._Element) -> list[str]:
        ref = decl.get("ref")
        if ref is not None:
            name = resolve(decl, ref)
            return self._enter(name, lambda: self.element(self.decls.elements[name]))
        type_name = decl.get("type")
        inline = decl.find(xs("complexType"))
        if type_name is not None:
            name = resolve(decl, type_name)
            if name == xs("anyType"):
                raise UnboundedSchema(f"{decl.get('name')} is xs:anyType")
            if name.startswith(f"{{{XS}}}") or name in self.decls.simple_types:
                below: list[str] = []
            else:
                complex_type = self.decls.complex_types[name]
                below = self._enter(name, lambda: self.complex_type(complex_type))
        elif inline is not None:
            below = self.complex_type(inline)
        elif decl.find(xs("simpleType")) is not None:
            below = []
        else:  # no type at all: xs:anyType, which admits anything
            raise UnboundedSchema(f"{decl.get('name')} has no type (xs:anyType)")
        return [str(decl.get("name")), *below]

    def complex_type(self, complex_type: etree._Element) -> list[str]:
        deepest: list[str] = []
        for child in complex_type.iterchildren(tag=etree.Element):
            if child.tag in (xs("sequence"), xs("choice"), xs("all"), xs("group")):
                deepest = max(deepest, self.particle(child), key=len)
            elif child.tag == xs("complexContent"):
                raise AssertionError("complexContent: teach this walk to follow base types")
            elif child.tag not in (
                xs("simpleContent"),
                xs("attribute"),
                xs("attributeGroup"),
                xs("anyAttribute"),
                xs("annotation"),
            ):
                raise AssertionError(f"unexpected {child.tag} (line {child.sourceline})")
        return deepest

    def particle(self, particle: etree._Element) -> list[str]:
        if particle.tag == xs("element"):
            return self.element(particle)
        if particle.tag == xs("any"):
            raise UnboundedSchema(f"xs:any at line {particle.sourceline}")
        if particle.tag == xs("group") and particle.get("ref") is not None:
            name = resolve(particle, str(particle.get("ref")))
            return self._enter(name, lambda: self.particle(self.decls.groups[name]))
        if particle.tag not in (xs("sequence"), xs("choice"), xs("all"), xs("group")):
            raise AssertionError(f"unexpected {particle.tag} (line {particle.sourceline})")
        deepest: list[str] = []
        for child in particle.iterchildren(tag=etree.Element):
            if child.tag != xs("annotation"):
                deepest = max(deepest, self.particle(child), key=len)
        return deepest


def deepest_path(schemas: list[etree._Element]) -> list[str]:
    """The deepest element path (local names from edXML down) the schemas admit."""
    decls = Declarations.of(schemas)
    return DepthWalk(decls).element(decls.elements[names.ROOT])


@pytest.mark.parametrize("files", [DOCUMENT_FILES, STATUS_FILES], ids=["document", "status"])
def test_strict_schemas_have_no_wildcard_element(files: tuple[str, ...]) -> None:
    for file in files:
        wildcards = list(load(file).iter(xs("any")))
        assert wildcards == [], f"{file} line {wildcards[0].sourceline if wildcards else ''}"


def test_strict_document_depth_is_strict_depth() -> None:
    path = deepest_path([load(file) for file in DOCUMENT_FILES])
    assert len(path) == parse.STRICT_DEPTH, "/".join(path)


def test_strict_status_depth_is_within_strict_depth() -> None:
    path = deepest_path([load(file) for file in STATUS_FILES])
    assert len(path) <= parse.STRICT_DEPTH, "/".join(path)


def _schema(body: str) -> etree._Element:
    return etree.fromstring(
        f'<xs:schema xmlns:xs="{XS}" xmlns:e="{names.NS}" targetNamespace="{names.NS}" '
        f'elementFormDefault="qualified">{body}</xs:schema>'
    )


@pytest.mark.parametrize(
    "body",
    [
        '<xs:element name="edXML" type="e:T"/>'
        '<xs:complexType name="T"><xs:sequence>'
        '<xs:element name="Again" type="e:T" minOccurs="0"/></xs:sequence></xs:complexType>',
        '<xs:element name="edXML"><xs:complexType><xs:sequence>'
        '<xs:element ref="e:edXML" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>',
        '<xs:element name="edXML"><xs:complexType><xs:group ref="e:G"/></xs:complexType>'
        '</xs:element><xs:group name="G"><xs:sequence><xs:element name="X">'
        '<xs:complexType><xs:group ref="e:G" minOccurs="0"/></xs:complexType></xs:element>'
        "</xs:sequence></xs:group>",
        '<xs:element name="edXML"><xs:complexType><xs:sequence>'
        '<xs:any processContents="lax"/></xs:sequence></xs:complexType></xs:element>',
        '<xs:element name="edXML"><xs:complexType><xs:sequence>'
        '<xs:element name="Open"/></xs:sequence></xs:complexType></xs:element>',
    ],
    ids=["recursive-type", "recursive-ref", "recursive-group", "wildcard", "any-type"],
)
def test_depth_walk_refuses_unbounded_schemas(body: str) -> None:
    with pytest.raises(UnboundedSchema):
        deepest_path([_schema(body)])


def test_depth_walk_follows_types_refs_and_groups() -> None:
    body = (
        '<xs:element name="edXML"><xs:complexType><xs:choice>'
        '<xs:element name="Shallow" type="xs:string"/><xs:group ref="e:G"/>'
        "</xs:choice></xs:complexType></xs:element>"
        '<xs:group name="G"><xs:all><xs:element ref="e:Leaf"/>'
        '<xs:element name="Typed" type="e:T"/></xs:all></xs:group>'
        '<xs:complexType name="T"><xs:sequence><xs:element ref="e:Leaf"/></xs:sequence>'
        "</xs:complexType>"
        '<xs:element name="Leaf" type="xs:string"/>'
    )
    assert deepest_path([_schema(body)]) == ["edXML", "Typed", "Leaf"]


# --- enumerations and patterns against the Python lists --------------------------------------


def enumeration(file: str, type_name: str) -> set[str]:
    """The values of a named simple type's enumeration, member types of a union included."""
    schema = load(file)
    namespace = schema.get("targetNamespace")
    named = {f"{{{namespace}}}{t.get('name')}": t for t in schema.iterchildren(xs("simpleType"))}

    def values(simple_type: etree._Element) -> set[str]:
        union = simple_type.find(xs("union"))
        if union is None:
            return {
                str(e.get("value"))
                for e in simple_type.iterfind(f"{xs('restriction')}/*")
                if e.tag == xs("enumeration")
            }
        found: set[str] = set()
        for member in (union.get("memberTypes") or "").split():
            found |= values(named[resolve(union, member)])
        for inline in union.iterchildren(xs("simpleType")):
            found |= values(inline)
        return found

    return values(named[f"{{{namespace}}}{type_name}"])


def pattern(file: str, type_name: str) -> str:
    schema = load(file)
    found = schema.xpath(
        "xs:simpleType[@name=$name]/xs:restriction/xs:pattern",
        namespaces={"xs": XS},
        name=type_name,
    )
    assert isinstance(found, list) and len(found) == 1, type_name
    facet = found[0]
    assert isinstance(facet, etree._Element)
    return str(facet.get("value"))


def test_the_schema_admits_exactly_the_policys_algorithms() -> None:
    """One signature policy (gateway.envelope.signature): the XSD, the envelope's checks and
    the verifier all follow it."""
    assert enumeration("xmldsig.xsd", "SignatureAlgorithm") == policy.SIGNATURE_METHODS
    assert enumeration("xmldsig.xsd", "DigestAlgorithm") == policy.DIGEST_METHODS
    assert enumeration("xmldsig.xsd", "C14nAlgorithm") == policy.CANONICALIZATIONS
    assert enumeration("xmldsig.xsd", "TransformAlgorithm") == policy.TRANSFORMS


def test_the_verifier_takes_its_algorithms_from_the_policy() -> None:
    assert {m.value for m in verify.STRICT_SIGNATURE_METHODS} == policy.SIGNATURE_METHODS
    assert {d.value for d in verify.STRICT_DIGESTS} == policy.DIGEST_METHODS
    weak = {m.value for m in verify.COMPAT_SIGNATURE_METHODS} - policy.SIGNATURE_METHODS
    assert weak == policy.WEAK_SIGNATURE_METHODS  # every weak one known to signxml
    assert {d.value for d in verify.COMPAT_DIGESTS} - policy.DIGEST_METHODS == (
        policy.WEAK_DIGEST_METHODS
    )
    assert all(policy.is_weak(uri) for uri in weak | policy.WEAK_DIGEST_METHODS)
    assert not any(policy.is_weak(uri) for uri in policy.SIGNATURE_METHODS)


def test_status_codes_are_the_models() -> None:
    assert enumeration("edxml-common.xsd", "StatusCode") == set(STATUS_CODES)


def test_document_id_pattern_is_names_document_id() -> None:
    # XSD patterns match the whole value, as read.py's DOCUMENT_ID.fullmatch does; the named
    # groups, which XSD has no syntax for, are the only difference allowed.
    unnamed = re.sub(r"\(\?P<\w+>([^()]*)\)", r"\1", names.DOCUMENT_ID.pattern)
    assert "(" not in unnamed
    assert pattern("edxml-profile-strict.xsd", "DocumentIdText") == unnamed


def test_organ_id_pattern_is_names_organ_id() -> None:
    # Matched whole on both sides: XSD patterns are anchored, names.is_organ_id uses fullmatch.
    assert pattern("edxml-profile-strict.xsd", "OrganIdText") == names.ORGAN_ID.pattern


# --- real dates -------------------------------------------------------------------------------

# Years that are multiples of 100 and of 4 are where leap-year rules go wrong; draw them often.
years = (
    st.integers(0, 9999)
    | st.integers(0, 99).map(lambda c: c * 100)
    | st.integers(0, 2499).map(lambda q: q * 4)
)
WITH_DUE_DATE = sample_document(due_date=date(2026, 12, 15))


def is_real(text: str) -> bool:
    try:
        names.parse_date(text)
    except ValueError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(year=years, month=st.integers(0, 13), day=st.integers(0, 32))
@example(year=2000, month=2, day=29)
@example(year=1900, month=2, day=29)
@example(year=400, month=2, day=29)
@example(year=0, month=2, day=29)
@example(year=0, month=1, day=1)
@example(year=9999, month=12, day=31)
@example(year=2026, month=4, day=31)
@example(year=2026, month=0, day=10)
def test_due_date_is_accepted_exactly_when_it_is_a_real_date(
    year: int, month: int, day: int
) -> None:
    text = f"{year:04d}/{month:02d}/{day:02d}"
    data = mutated(set_text("//e:MessageHeader/e:DueDate", text), WITH_DUE_DATE)
    if is_real(text):
        assert parse_package(data, Profile.STRICT).due_date == names.parse_date(text)
    else:
        with pytest.raises(PackageRejected) as caught:
            parse_package(data, Profile.STRICT)
        assert caught.value.code == "date_invalid"


def test_every_identity_constraint_of_the_schemas_has_its_report() -> None:
    """A constraint is either a count (<Name>Once, <Name>AtMostOnce, named in its failure's
    message) or one of the pairings and uniqueness rules with their own catalogue codes."""
    from gateway.envelope.schema import CONSTRAINTS, SCHEMA_DIR

    xs = "{http://www.w3.org/2001/XMLSchema}"
    names = {
        el.get("name")
        for path in SCHEMA_DIR.glob("*.xsd")
        for el in etree.parse(str(path)).iter(f"{xs}key", f"{xs}unique", f"{xs}keyref")
    }
    counts = {n for n in names if n.endswith("Once") and n not in CONSTRAINTS}
    assert names - counts == set(CONSTRAINTS)
    assert {n.removesuffix("AtMostOnce").removesuffix("Once") for n in counts} == {
        "From",
        "DocumentId",
        "Code",
        "PromulgationInfo",
        "DocumentType",
        "Subject",
        "Content",
        "DueDate",
        "SteeringType",
    }
