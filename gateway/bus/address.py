"""Pure reading of the broker's address: one AMQP URL naming one host or the nodes of a cluster
(``amqp://user:pass@h1:5672,h2:5673,h3/vhost``), split into one URL per host, in order.

Every node of a RabbitMQ cluster serves every queue, so a client connects to the first host
that answers and, when that connection is lost, to the next one. Messages never repeat the
URL's credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMES = {"amqp": 5672, "amqps": 5671}


@dataclass(frozen=True, slots=True)
class BrokerHost:
    url: str  # a URL of this host alone, with the credentials, virtual host and query
    host: str  # as written (an IPv6 address in brackets)
    port: int

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def broker_hosts(url: str) -> tuple[BrokerHost, ...]:
    """Each host of ``url`` with a URL of its own; ValueError saying what is wrong.

    A URL naming one host is kept exactly as written."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError("must start with amqp:// or amqps://")
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
              default=len(rest))  # fmt: skip
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostlist = authority.rpartition("@")
    credentials = f"{userinfo}{at}"
    entries = hostlist.split(",")
    hosts: list[BrokerHost] = []
    for number, entry in enumerate(entries, 1):
        host, port = _host_and_port(entry.strip(), SCHEMES[scheme.lower()], number, len(entries))
        if any(h.host.lower() == host.lower() and h.port == port for h in hosts):
            raise ValueError(f"names {host}:{port} twice")
        single = url if len(entries) == 1 else f"{scheme}://{credentials}{entry.strip()}{tail}"
        hosts.append(BrokerHost(single, host, port))
    return tuple(hosts)


def _host_and_port(entry: str, default_port: int, number: int, count: int) -> tuple[str, int]:
    which = "the host" if count == 1 else f"host {number} of {count}"
    if not entry:
        raise ValueError(f"{which} is empty (hosts are separated by single commas)")
    if entry.startswith("["):  # an IPv6 address
        close = entry.find("]")
        if close < 0:
            raise ValueError(f"{which} opens an IPv6 address with [ but does not close it")
        host, after = entry[: close + 1], entry[close + 1 :]
        if after and not after.startswith(":"):
            raise ValueError(f"{which}: only :port may follow an IPv6 address")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = entry.partition(":")
        if ":" in port_text:
            raise ValueError(f"{which}: write an IPv6 address in brackets, [::1]:5672")
    if not host or host == "[]":
        raise ValueError(f"{which} has no name")
    if any(c.isspace() or c in "@/" for c in host):
        raise ValueError(f"{which} is not a host name ({host!r})")
    if port_text == "" and entry.endswith(":"):
        raise ValueError(f"{which} has an empty port")
    if port_text == "":
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{which} has a port that is not 1-65535 ({port_text!r})")
    return host, int(port_text)


def describe(hosts: tuple[BrokerHost, ...]) -> str:
    """``RabbitMQ at h1:5672`` or ``RabbitMQ at h1:5672, h2:5673 (a cluster)``: no
    credentials."""
    where = ", ".join(h.where for h in hosts)
    return f"RabbitMQ at {where}" + (" (a cluster)" if len(hosts) > 1 else "")
