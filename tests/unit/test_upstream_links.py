"""The links file (checked whole, every problem named) and the routing rule of links."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.upstream.links import load_links, read_links
from gateway.envelope import Profile
from gateway.errors import ConfigError

TWO = """
[[link]]
name = "axis"
url = "https://axis.example/vxp/"
system_id = "000.00.00.H07"
secret_file = "axis.secret"
serves = ["*.G??", "*.G?"]
profile = "compat"
poll = 15

[[link]]
name = "h08"
url = "http://gw.h08.example/vxp"
system_id = "000.00.00.H07"
secret = "s3cret"
serves = ["*.H08"]
peer = "000.00.00.H08"
"""


def test_links_are_read_with_their_defaults_and_route_by_pattern(tmp_path: Path) -> None:
    (tmp_path / "axis.secret").write_text("from-a-file\n")
    (tmp_path / "links.toml").write_text(TWO)
    links = load_links(tmp_path / "links.toml")
    axis, h08 = links
    assert (axis.url, axis.secret.reveal(), axis.profile, axis.poll) == (
        "https://axis.example/vxp",
        "from-a-file",
        Profile.COMPAT,
        15.0,
    )
    assert (h08.profile, h08.poll, h08.peer, h08.queue) == (
        Profile.STRICT,
        30.0,
        "000.00.00.H08",
        "link:h08",
    )
    assert "s3cret" not in repr(h08)
    assert links.route("000.00.00.G22") is axis
    assert links.route("000.12.30.H08") is h08
    assert links.route("000.00.05.H09") is None
    assert links.of_peer("000.00.00.H08") is h08 and links.of_peer("000.00.00.H07") is None
    assert links.of_queue("link:axis") is axis and links.of_queue("000.00.00.G22") is None
    assert not len(load_links(None))


def test_every_problem_of_a_links_file_is_named() -> None:
    text = """
[[link]]
name = "Bad Name"
url = "ftp://x"
serves = "*.H08"
profile = "lenient"
poll = -1
colour = "blue"

[[link]]
name = "h08"
url = "http://a/vxp"
system_id = "1"
secret = "x"
serves = ["*.H08"]
peer = "p"

[[link]]
name = "h08"
url = "http://b/vxp"
system_id = "1"
secret = "y"
serves = ["*.H09"]
peer = "p"
"""
    with pytest.raises(ConfigError) as refused:
        read_links(text)
    message = refused.value.message
    for problem in (
        "unknown setting(s) colour",
        "name 'Bad Name'",
        "url must be http:// or https://",
        "system_id must be a non-empty string",
        "give secret or secret_file",
        "serves must be a list",
        "profile must be strict or compat",
        "poll must be a positive number",
        "link 'h08' is defined twice",
        "peer p is given to two links",
    ):
        assert problem in message, problem


def test_a_missing_links_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_FEDERATION_LINKS"):
        load_links(tmp_path / "absent.toml")
