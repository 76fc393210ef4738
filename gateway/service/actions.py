"""Who did what: operator actions (reloads, unit changes, tokens, keys, redrives) as ledger
events of type ``operator``, whose ``code`` is the action and whose details name the actor."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.ledger import Event, EventType
from gateway.service.tokens import Principal


@dataclass(frozen=True)
class Actor:
    """Who asked: a token (its id and role), a command line (``cli:<login>``), or the gateway
    itself (a signal or a changed file)."""

    id: str
    role: str

    SYSTEM: ClassVar[Actor]

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.token_id, principal.role.value)

    @classmethod
    def command_line(cls) -> Actor:
        try:
            login = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            login = "unknown"
        return cls(f"cli:{login}"[:64], "operator")


Actor.SYSTEM = Actor("gateway", "system")


def operator_event(action: str, actor: Actor, **details: Any) -> Event:
    """The ledger event of one operator action (``action``: reload, unit_add, token_issue…)."""
    return Event(
        EventType.OPERATOR,
        code=action,
        details={"actor": actor.id, "role": actor.role, **details},
    )
