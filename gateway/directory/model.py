"""The unit directory's values: one ``Unit`` per row of the directory file, and the
``Directory`` that answers the queries (by code, children, descendants, level)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


class DeliveryMode(enum.StrEnum):
    """How a unit receives its packages."""

    PULL = "pull"  # the unit's system fetches its inbox over HTTP
    PUSH = "push"  # the gateway posts to the unit's webhook (``endpoint``)
    AMQP = "amqp"  # the unit's system consumes its RabbitMQ queue directly


class UnitStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # may neither send nor receive


@dataclass(frozen=True, slots=True)
class Unit:
    code: str  # OrganId, NNN.NN.NN.Lnn
    name: str
    parent_code: str | None  # None for a top unit (level 1)
    level: int  # 1 (province or ministry) to 4
    delivery: DeliveryMode
    endpoint: str | None  # the webhook URL of a push unit; None otherwise
    status: UnitStatus
    cert_sha256: tuple[str, ...] = ()  # pinned signer certificates (lowercase hex SHA-256)

    @property
    def active(self) -> bool:
        return self.status is UnitStatus.ACTIVE

    def as_dict(self) -> dict[str, object]:
        """The unit as JSON-ready values (CLI --json and the HTTP API)."""
        return {
            "code": self.code,
            "name": self.name,
            "parent_code": self.parent_code,
            "level": self.level,
            "delivery": self.delivery.value,
            "endpoint": self.endpoint,
            "status": self.status.value,
            "cert_sha256": list(self.cert_sha256),
        }


class Directory:
    """The units of one directory file, in file order; immutable once built.

    Queries on a code the directory does not hold return nothing (``None`` or an empty tuple);
    ``code in directory`` tells the two cases apart."""

    __slots__ = ("_by_code", "_children", "_guest", "_units")

    def __init__(self, units: Iterable[Unit]) -> None:
        self._guest: Callable[[str], Unit | None] | None = None
        self._units = tuple(units)
        self._by_code = {u.code: u for u in self._units}
        if len(self._by_code) != len(self._units):
            raise ValueError("unit codes must be unique")
        children: dict[str, list[Unit]] = {}
        for u in self._units:
            if u.parent_code is not None:
                children.setdefault(u.parent_code, []).append(u)
        self._children = {code: tuple(units) for code, units in children.items()}

    def get(self, code: str) -> Unit | None:
        unit = self._by_code.get(code)
        if unit is None and self._guest is not None:
            return self._guest(code)
        return unit

    def with_guests(self, guest: Callable[[str], Unit | None]) -> Directory:
        """This directory, whose ``get`` also answers for the codes ``guest`` vouches for
        (the senders behind an upstream link, when their packages are verified). Everything
        else, ``in`` included, is about the directory's own units only."""
        other = Directory.__new__(Directory)
        other._units, other._by_code, other._children = self._units, self._by_code, self._children
        other._guest = guest
        return other

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def __repr__(self) -> str:
        return f"<Directory of {len(self._units)} units>"

    def roots(self) -> tuple[Unit, ...]:
        """The units without a parent (the provincial committee in the sample)."""
        return tuple(u for u in self._units if u.parent_code is None)

    def children(self, code: str) -> tuple[Unit, ...]:
        """The units whose parent is ``code``, in file order."""
        return self._children.get(code, ())

    def descendants(self, code: str) -> tuple[Unit, ...]:
        """Every unit below ``code`` (not ``code`` itself), depth first, children in file order."""
        found: list[Unit] = []
        stack = list(reversed(self.children(code)))
        while stack:
            unit = stack.pop()
            found.append(unit)
            stack.extend(reversed(self.children(unit.code)))
        return tuple(found)

    def at_level(self, level: int) -> tuple[Unit, ...]:
        return tuple(u for u in self._units if u.level == level)

    def ancestors(self, code: str) -> tuple[Unit, ...]:
        """The parents of ``code`` from the nearest up to the top unit."""
        found: list[Unit] = []
        unit = self._by_code.get(code)
        while unit is not None and unit.parent_code is not None and len(found) < len(self):
            unit = self._by_code.get(unit.parent_code)
            if unit is None:
                break
            found.append(unit)
        return tuple(found)
