"""The hostile-XML corpus: every document refused early, cheaply, without expanding entities,
reading files or opening connections."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.envelope import Profile, parse_package, xmlsafe
from gateway.errors import PackageRejected

CORPUS = sorted((Path(__file__).parents[1] / "data" / "hostile-xml").glob("*.xml"))


def test_corpus_is_present() -> None:
    assert len(CORPUS) == 7


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
@pytest.mark.parametrize("profile", list(Profile))
def test_hostile_document_is_refused_before_the_parser_runs(
    path: Path, profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the XML parser ran on a hostile document")

    monkeypatch.setattr(xmlsafe.etree, "fromstring", no_parse)
    with pytest.raises(PackageRejected) as caught:
        parse_package(path.read_bytes(), profile)
    assert caught.value.code in ("xml_forbidden_construct", "xml_malformed")


def test_parser_itself_neither_reads_files_nor_expands_entities(tmp_path: Path) -> None:
    """Defence in depth: had the prolog check missed a DOCTYPE, the parser settings still hold."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    document = (
        f'<!DOCTYPE r [<!ENTITY ee SYSTEM "file://{secret}"><!ENTITY a "AAAAAAAAAA">]>'
        "<r>&ee;&a;&a;&a;</r>"
    ).encode()
    root = etree.fromstring(document, xmlsafe._local.parser)
    text = etree.tostring(root)
    assert b"TOP-SECRET" not in text
    assert b"AAAAAAAAAA" not in text  # references stay references, nothing is expanded


def test_network_entities_are_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    document = b'<!DOCTYPE r [<!ENTITY ee SYSTEM "http://127.0.0.1:9/x">]><r>&ee;</r>'
    root = etree.fromstring(document, xmlsafe._local.parser)
    assert b"&ee;" in etree.tostring(root)


def test_doctype_after_comments_and_processing_instructions_is_found() -> None:
    document = b'<?xml version="1.0"?>\n<!-- hi -->\n<?pi x?>\n<!DOCTYPE r [<!ENTITY a "b">]><r/>'
    with pytest.raises(PackageRejected) as caught:
        parse_package(document)
    assert caught.value.code == "xml_forbidden_construct"
    assert caught.value.where == "line 4"


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    document = b"<a>" * depth + b"</a>" * depth
    with pytest.raises(PackageRejected) as caught:
        parse_package(document)
    assert caught.value.code == "xml_too_deep"
