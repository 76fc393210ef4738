"""``gateway links``: the upstream links and the state of each, as an operator checks them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gateway.cli.common import echo_json, fail_environment, settings, with_database
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@click.command("links")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per link.")
def links(as_json: bool) -> None:
    """The upstream links (GATEWAY_FEDERATION_LINKS) and the state of each: its copies waiting
    to be sent (retrying among them), stopped (dead or expired: `gateway admin redrive
    link:NAME --all`), sent, the last time the upstream took one, the last failure, and its
    directory's version. Reads the gateway's database."""
    from adapters.upstream.links import load_links
    from gateway.service import remote_store

    try:
        configured = load_links(settings().federation.links)
    except ConfigError as e:
        fail_environment(e.message)
    if not len(configured):
        fail_environment("no upstream link is configured (GATEWAY_FEDERATION_LINKS)")
    rows: list[dict[str, Any]] = []

    async def look(engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            states = await remote_store.link_states(conn)
            for link in configured:
                state = states.get(link.queue, remote_store.LinkState())
                version = await remote_store.version(conn, link.name)
                rows.append(
                    {
                        "name": link.name,
                        "url": link.url,
                        "system_id": link.system_id,
                        "serves": list(link.serves),
                        "profile": link.profile.value,
                        "poll": link.poll,
                        "peer": link.peer,
                        "waiting": state.waiting,
                        "retrying": state.retrying,
                        "stopped": state.stopped,
                        "delivered": state.delivered,
                        "last_delivered_at": _time(state.last_delivered_at),
                        "last_failure": state.last_reason,
                        "directory_version": version or None,
                    }
                )

    with_database(look)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']}  {row['url']}  serves {', '.join(row['serves'])}")
        click.echo(
            f"  waiting {row['waiting']} (retrying {row['retrying']}), stopped {row['stopped']}, "
            f"sent {row['delivered']}, last sent {row['last_delivered_at'] or 'never'}"
        )
        if row["last_failure"]:
            click.echo(f"  last failure: {row['last_failure']}")
        version = row["directory_version"]
        click.echo(
            f"  directory: version {version}" if version else "  directory: not synchronised"
        )
