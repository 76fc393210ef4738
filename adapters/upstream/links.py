"""The configured upstream links and the routing rule, pure: which link serves a unit code.

A link is read from the links file (``GATEWAY_FEDERATION_LINKS``, TOML, one ``[[link]]``
table each). A unit of the local directory is always delivered locally; a unit behind a link
is one whose code matches one of the link's ``serves`` patterns, and, once the link's
directory has been synchronised (``gateway units sync``), is also listed in it."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Secret
from gateway.envelope import Profile
from gateway.errors import ConfigError

QUEUE_PREFIX = "link:"  # the bus queue of a link: link:<name>, never a unit code (no colon)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,30}")
DEFAULT_POLL = 30.0


@dataclass(frozen=True)
class Link:
    """One upstream: where it is, who we are to it, whom it serves and how far we trust it."""

    name: str
    url: str  # the protocol's endpoint, e.g. https://axis.example/vxp
    system_id: str  # our systemId at the upstream
    secret: Secret  # the secret the upstream issued for system_id
    serves: tuple[str, ...]  # OrganId patterns (``*`` and ``?`` wildcards), e.g. ``*.H08``
    profile: Profile = Profile.STRICT  # how packages arriving from this link are judged
    poll: float = DEFAULT_POLL  # seconds between two looks at what the upstream holds for us
    # The upstream's own systemId at our façade, when it sends to us with sendEdoc (a peer
    # gateway does); None: it only holds letters for us to poll.
    peer: str | None = None

    @property
    def queue(self) -> str:
        """The bus queue of the copies waiting to be sent to this link."""
        return QUEUE_PREFIX + self.name

    def serves_code(self, code: str) -> bool:
        return any(fnmatch.fnmatchcase(code, pattern) for pattern in self.serves)


class Links:
    """Every configured link, in the file's order: the first whose patterns match routes."""

    def __init__(self, links: tuple[Link, ...] = ()) -> None:
        self.links = links
        self._by_name = {link.name: link for link in links}
        self._by_peer = {link.peer: link for link in links if link.peer}

    def __iter__(self) -> Iterator[Link]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def get(self, name: str) -> Link | None:
        return self._by_name.get(name)

    def named(self, name: str) -> Link:
        link = self._by_name.get(name)
        if link is None:
            known = ", ".join(self._by_name) or "none is configured"
            raise ConfigError(f"no upstream link {name!r} (GATEWAY_FEDERATION_LINKS: {known})")
        return link

    def of_peer(self, system_id: str) -> Link | None:
        """The link whose upstream connects to our façade as ``system_id``."""
        return self._by_peer.get(system_id)

    def route(self, code: str) -> Link | None:
        """The link a unit code that is not in the local directory would be sent to."""
        return next((link for link in self.links if link.serves_code(code)), None)

    def of_queue(self, queue: str) -> Link | None:
        if not queue.startswith(QUEUE_PREFIX):
            return None
        return self._by_name.get(queue[len(QUEUE_PREFIX) :])


def _text(entry: Mapping[str, Any], key: str, where: str, problems: list[str]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty string")
        return ""
    return value.strip()


def _link(entry: Mapping[str, Any], where: str, base: Path, problems: list[str]) -> Link | None:
    known = {"name", "url", "system_id", "secret", "secret_file", "serves", "profile", "poll"}
    known.add("peer")
    unknown = sorted(set(entry) - known)
    if unknown:
        problems.append(f"{where}: unknown setting(s) {', '.join(unknown)}")
    name = _text(entry, "name", where, problems)
    if name and not _NAME.fullmatch(name):
        problems.append(f"{where}: name {name!r} must be lower-case letters, digits, - or _")
    url = _text(entry, "url", where, problems).rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        problems.append(f"{where}: url must be http:// or https://, not {url!r}")
    system_id = _text(entry, "system_id", where, problems)
    secret = entry.get("secret")
    if "secret_file" in entry:
        path = Path(str(entry["secret_file"]))
        try:
            secret = (path if path.is_absolute() else base / path).read_text("utf-8").strip()
        except OSError as e:
            problems.append(f"{where}: secret_file {path}: {e.strerror}")
    if not isinstance(secret, str) or not secret:
        problems.append(f"{where}: give secret or secret_file")
        secret = ""
    serves = entry.get("serves")
    if not isinstance(serves, list) or not serves or not all(isinstance(s, str) for s in serves):
        problems.append(f'{where}: serves must be a list of OrganId patterns, e.g. ["*.H08"]')
        serves = []
    try:
        profile = Profile(entry.get("profile", "strict"))
    except ValueError:
        problems.append(f"{where}: profile must be strict or compat")
        profile = Profile.STRICT
    poll = entry.get("poll", DEFAULT_POLL)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or poll <= 0:
        problems.append(f"{where}: poll must be a positive number of seconds")
        poll = DEFAULT_POLL
    peer = entry.get("peer")
    if peer is not None and (not isinstance(peer, str) or not peer.strip()):
        problems.append(f"{where}: peer must be the upstream's systemId at our façade")
        peer = None
    if problems:
        return None
    return Link(
        name, url, system_id, Secret(secret), tuple(serves), profile, float(poll), peer or None
    )


def read_links(text: str, base: Path = Path(".")) -> Links:
    """The links of a links file's text, checked whole: ``ConfigError`` names every problem.
    ``base`` is where relative ``secret_file`` paths start."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the links file is not valid TOML: {e}") from e
    entries = data.get("link", [])
    extra = sorted(set(data) - {"link"})
    problems = [f"unknown table(s) {', '.join(extra)}: links are [[link]] tables"] if extra else []
    if not isinstance(entries, list):
        raise ConfigError("the links file's links are [[link]] tables")
    links: list[Link] = []
    for i, entry in enumerate(entries, 1):
        own: list[str] = []
        link = _link(entry, f"link {i}", base, own)
        problems += own
        if link is not None:
            links.append(link)
    names = [link.name for link in links]
    problems += [
        f"link {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    peers = [link.peer for link in links if link.peer]
    problems += [
        f"peer {p} is given to two links" for p in sorted({p for p in peers if peers.count(p) > 1})
    ]
    if problems:
        raise ConfigError("the links file: " + "; ".join(problems))
    return Links(tuple(links))


def load_links(path: Path | None) -> Links:
    """The links of GATEWAY_FEDERATION_LINKS, or none when it is not set."""
    if path is None:
        return Links()
    try:
        text = path.read_text("utf-8")
    except OSError as e:
        raise ConfigError(f"GATEWAY_FEDERATION_LINKS={path}: {e.strerror}") from e
    return read_links(text, path.parent)
