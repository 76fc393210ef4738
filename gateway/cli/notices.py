"""``gateway inbox notices``: a sender's transport notices (its copies that expired, were
dead-lettered or were redriven), listed and acknowledged over HTTP."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.client import JSON_OPTION, TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import echo_json
from gateway.client import GatewayClient


@click.command("notices")
@URL_OPTION
@TOKEN_OPTION
@click.option("--unit", "for_unit", metavar="CODE", help="Another unit's notices (operators).")
@click.option("--ack", "acknowledge", is_flag=True, help="Acknowledge the notices listed.")
@JSON_OPTION
def inbox_notices(
    url: str | None, token: str | None, for_unit: str | None, acknowledge: bool, as_json: bool
) -> None:
    """Your transport notices: the copies you sent that expired, were dead-lettered or were
    redriven, one line each (notice id, event, recipient, delivery id, document key, reason).
    With --ack they are acknowledged (ledgered as `notified`) and not listed again."""

    async def work(gw: GatewayClient) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await gw.notices(unit=for_unit, after=cursor)
            found += page.get("notices", [])
            cursor = page.get("next")
            if not cursor:
                break
        if acknowledge and found:
            await gw.ack_notices([n["notice_id"] for n in found])
        return found

    found = call(url, token, work, as_json)
    if as_json:
        echo_json({"notices": found})
        return
    for n in found:
        click.echo(
            f"{n['notice_id']}  {n['event']}  {n['recipient']}  {n['delivery_id']}  "
            f"{n['document_key']}  {n.get('reason') or ''}".rstrip()
        )
    acked = " (acknowledged)" if acknowledge and found else ""
    click.echo(f"{len(found)} notice{'' if len(found) == 1 else 's'}{acked}", err=True)
