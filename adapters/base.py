"""What every adapter offers, and where adapters are found."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, Self

from gateway.client import Fetched
from gateway.errors import ConfigError

GROUP = "gateway.adapters"


@dataclass(frozen=True)
class Outgoing:
    """A package the agency system has put out: ``ref`` is the adapter's own name for it (a
    file name), ``data`` the bytes to submit (a document or a status packet)."""

    ref: str
    data: bytes


class AgencyAdapter(Protocol):
    """One unit's agency system, as the connector sees it.

    The connector calls these in one task, one at a time; each must be safe to repeat after a
    crash at any point (the gateway answers the same package again with its first answer, and
    offers a copy again until it is acknowledged)."""

    name: ClassVar[str]
    unit: str

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """The adapter for these settings, checked whole: ConfigError naming every problem."""
        ...

    def outgoing(self) -> Iterable[Outgoing]:
        """What the system has put out and the gateway has not yet answered, oldest first."""
        ...

    def sent(self, item: Outgoing, document_key: str) -> None:
        """The gateway accepted ``item`` (or had accepted it before)."""
        ...

    def refused(self, item: Outgoing, code: str, message: str, where: str | None) -> None:
        """The gateway refused ``item``: it will not be submitted again as it is."""
        ...

    def deliver(self, copy: Fetched) -> None:
        """Hand a copy to the system, durably: once this returns, the copy is acknowledged,
        so it must survive a crash. Called again for a copy after a crash before its
        acknowledgement: the system must not get it twice."""
        ...

    def acknowledged(self, delivery_id: str) -> None:
        """The gateway has the acknowledgement of a copy ``deliver`` handed over."""
        ...


def registered() -> dict[str, str]:
    """Adapter name -> where it is defined, for every installed adapter."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def adapter_class(name: str) -> type[AgencyAdapter]:
    """The installed adapter called ``name`` (ConfigError naming those there are)."""
    for ep in entry_points(group=GROUP, name=name):
        cls: type[AgencyAdapter] = ep.load()
        return cls
    known = ", ".join(sorted(registered())) or "none"
    raise ConfigError(f"no adapter {name!r} is installed (installed: {known})")
