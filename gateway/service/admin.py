"""Operator actions on a running gateway, each a ledger event naming its actor: reloading the
directory and trust files, changing a unit (which reloads at once), redriving copies, and
revoking tokens (refused at once by this process, by the others within their token cache)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.directory.edit import UnitChange, change_unit
from gateway.ledger import Event
from gateway.service.actions import Actor, operator_event
from gateway.service.core import Gateway
from gateway.service.reload import Reloader, ReloadResult
from gateway.service.tokens import TokenChecker, revoke_tokens


@dataclass(frozen=True)
class UnitChanged:
    change: UnitChange
    reload: ReloadResult | None  # None when the change set nothing new


def unit_event(action: str, actor: Actor, change: UnitChange) -> Event:
    """The ledger event of a unit change (``unit_add``, ``unit_update``, ``unit_suspend``,
    ``unit_resume``): the unit and each field set, values cut to 300 characters."""
    return operator_event(
        action,
        actor,
        unit=change.after.code,
        fields={k: v[:300] for k, v in change.fields.items()},
    )


class Admin:
    """What operators do to a running gateway; each action ledgered with its actor."""

    def __init__(self, gateway: Gateway, reloader: Reloader, tokens: TokenChecker) -> None:
        self.gateway = gateway
        self.reloader = reloader
        self.tokens = tokens

    async def reload(self, actor: Actor, trigger: str = "api") -> ReloadResult:
        return await self.reloader.reload(trigger, actor)

    async def change_unit(
        self,
        actor: Actor,
        action: str,
        code: str,
        values: Mapping[str, str],
        *,
        create: bool = False,
    ) -> UnitChanged:
        """Change the directory file, ledger the change, and reload so that it takes effect
        now. A change that sets nothing new is answered without either."""
        path = self.reloader.sources.directory
        change = await asyncio.to_thread(change_unit, path, code, values, create=create)
        if not change.fields:
            return UnitChanged(change, None)
        await self.gateway.writer.record([unit_event(action, actor, change)])
        return UnitChanged(change, await self.reloader.reload("api", actor))

    async def redrive(self, actor: Actor, unit: str, ids: Sequence[str] | None) -> int:
        count = await self.gateway.redrive(unit, ids)
        details: dict[str, object] = {"unit": unit, "redriven": count}
        if ids is not None:
            details["ids"] = list(ids)[:50]
            details["asked"] = len(ids)
        await self.gateway.writer.record([operator_event("redrive", actor, **details)])
        return count

    async def revoke_token(self, actor: Actor, token_id: str) -> int:
        count = await revoke_tokens(self.gateway.engine, token_id=token_id)
        self.tokens.forget(token_id)
        if count:
            await self.gateway.writer.record(
                [operator_event("token_revoke", actor, token_id=token_id)]
            )
        return count
