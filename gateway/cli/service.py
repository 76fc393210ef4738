"""``gateway serve`` and ``gateway tokens``: running the service and managing its tokens."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from gateway.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    fail_environment,
    record_action,
    run_async,
    settings,
)
from gateway.db.engine import database_exists, open_engine
from gateway.db.migrate import upgrade
from gateway.directory import DeliveryMode, Directory
from gateway.errors import ConfigError, GatewayError
from gateway.logs import configure_logging
from gateway.service.actions import Actor, operator_event
from gateway.service.tokens import Role, issue_token, list_tokens, revoke_tokens

T = TypeVar("T")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    help="Seconds that in-flight requests and deliveries get to finish on shutdown.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    help="Gateway processes behind the port. Default: one per core with PostgreSQL "
    "(GATEWAY_DATABASE_URL), one with the embedded SQLite database.",
)
def serve(host: str, port: int, grace: float, workers: int | None) -> None:
    """Run the gateway: HTTP API, delivery to every unit, ledger.

    With no configuration it runs embedded: SQLite and the local bus under ./var/, the sample
    809-unit directory, and a development PKI created under ./var/keys/ on first start.
    GATEWAY_AMQP_URL, GATEWAY_DATABASE_URL, GATEWAY_DIRECTORY, GATEWAY_KEYS, GATEWAY_TRUST and
    GATEWAY_CRL select production parts (docs/configuration.md); GATEWAY_API_TLS_CERT and _KEY serve
    HTTPS, and GATEWAY_API_CLIENT_CERTS=optional|required asks for unit certificates (mutual
    TLS). Stop with Ctrl-C or SIGTERM: requests in
    flight finish, consumers stop after their current message, nothing accepted is lost.

    With --workers N, N processes share the port and the database; the ledger stays one
    ordered log. Embedded, several workers share the SQLite files and take turns at its one
    write lock: faster flat out, but with a longer latency tail at moderate load and more
    memory, so the default stays one (see docs/operations.md).
    """
    from gateway.api.app import serve
    from gateway.api.tls import server_ssl_context
    from gateway.memory import bound_malloc_arenas
    from gateway.service.runtime import keys_folder
    from gateway.trust import KeysLayout

    config = settings()
    configure_logging(config.log)
    bound_malloc_arenas()  # before the first thread: see gateway/memory.py
    if workers is None:
        workers = (os.cpu_count() or 1) if config.database_url is not None else 1
    try:
        keys = keys_folder(config, click.echo)
        bundle = config.trust or KeysLayout(keys).trust_pem
        ssl_context = server_ssl_context(config, str(bundle))
        if workers > 1:
            from gateway.api.workers import run_workers

            sys.exit(
                run_workers(
                    config,
                    host=host,
                    port=port,
                    workers=workers,
                    grace=grace,
                    ssl_context=ssl_context,
                    say=click.echo,
                )
            )
        serve(config, grace=grace, ssl_context=ssl_context, say=click.echo, host=host, port=port)
    except (ConfigError, GatewayError) as e:
        fail_environment(e.message)
    except OSError as e:
        fail_environment(f"cannot listen on {host}:{port}: {e.strerror}")


def _run(work: Callable[..., Awaitable[T]]) -> T:
    config = settings()
    if not database_exists(config):
        fail_environment(
            f"no gateway database at {config.home / 'ledger.db'} (GATEWAY_HOME={config.home}): "
            "run this where the gateway runs, set GATEWAY_HOME or GATEWAY_DATABASE_URL, or "
            "create it with `gateway db upgrade`"
        )

    async def main() -> T:
        engine = open_engine(config)
        try:
            await upgrade(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    return run_async(main(), config)


@click.group()
def tokens() -> None:
    """Access tokens for agency systems, operators and auditors (stored hashed)."""


@tokens.command("issue")
@click.option("--unit", required=True, help="The unit (OrganId) the token speaks for.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default="unit",
    show_default=True,
    help="unit: its own packages and inbox; operator: redrive, every unit; auditor: read only.",
)
@click.option(
    "--expires", type=click.IntRange(min=1), help="Days until it expires (default never)."
)
@click.option(
    "--vxp",
    is_flag=True,
    help="A national-axis façade secret instead: prints systemId=<unit> and secret=<secret> "
    "(docs/national-axis.md); a new one replaces the unit's last.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the token as JSON.")
def tokens_issue(unit: str, role: str, expires: int | None, vxp: bool, as_json: bool) -> None:
    """Issue a token and print it once; only its hash is kept."""
    from adapters.upstream.links import load_links
    from gateway.cli.units import open_directory

    directory = open_directory(None)
    # a façade secret may also be for the peer of an upstream link (another province's gateway)
    peer = vxp and load_links(settings().federation.links).of_peer(unit) is not None
    if (role == "unit" or vxp) and unit not in directory and not peer:
        fail_environment(f"{unit} is not in the unit directory (nor an upstream link's peer)")
    if vxp:
        if role != "unit" or expires is not None:
            click.echo("error: --vxp secrets are for units and do not expire", err=True)
            sys.exit(EXIT_USAGE)
        _issue_vxp(unit, directory, as_json)
        return
    issued = _run(lambda engine: issue_token(engine, unit, Role(role), days=expires))
    expires_at = issued.expires_at.isoformat() if issued.expires_at else None
    record_action(
        operator_event(
            "token_issue",
            Actor.command_line(),
            token_id=issued.token_id,
            unit=unit,
            token_role=role,
            expires_at=expires_at,
        )
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "token_id": issued.token_id,
                    "token": issued.token,
                    "unit": issued.unit,
                    "role": issued.role.value,
                    "expires_at": expires_at,
                }
            )
        )
    else:
        click.echo(issued.token)
        click.echo(
            f"token {issued.token_id} for {unit} ({role}); keep it secret: it is not shown again",
            err=True,
        )


def _issue_vxp(unit: str, directory: Directory, as_json: bool) -> None:
    """A façade secret for the unit's system, printed once as ``systemId=`` and ``secret=``
    lines (or JSON); stored encrypted under the façade key."""
    from gateway.service.vxp_secrets import issue_secret, key_file, open_key

    config = settings()
    key = open_key(key_file(config))
    issued = _run(lambda engine: issue_secret(engine, key, unit))
    record_action(operator_event("vxp_secret_issue", Actor.command_line(), unit=unit))
    if as_json:
        click.echo(json.dumps({"systemId": issued.system_id, "secret": issued.secret}))
    else:
        click.echo(f"systemId={issued.system_id}")
        click.echo(f"secret={issued.secret}")
    found = directory.get(unit)
    if found is not None and found.delivery is not DeliveryMode.PULL:
        click.echo(
            f"warning: {unit} takes its letters by {found.delivery.value}; a façade system "
            "reads the pull inbox (gateway units update CODE --delivery pull)",
            err=True,
        )
    if not config.vxp.enabled:
        click.echo("note: the façade is served only with GATEWAY_VXP_ENABLED=true", err=True)
    click.echo("keep the secret safe: it is not shown again", err=True)


@tokens.command("revoke")
@click.argument("token_id", required=False)
@click.option("--unit", help="Revoke every token of this unit instead.")
@click.option("--vxp", "vxp_system", metavar="CODE", help="Revoke this unit's façade secret.")
def tokens_revoke(token_id: str | None, unit: str | None, vxp_system: str | None) -> None:
    """Revoke a token (by its id, the part after gw_), every token of a unit, or a unit's
    national-axis façade secret (refused at once by every running gateway)."""
    if sum(x is not None for x in (token_id, unit, vxp_system)) != 1:
        click.echo("error: give a TOKEN_ID, --unit or --vxp", err=True)
        sys.exit(EXIT_USAGE)
    if vxp_system is not None:
        from gateway.service.vxp_secrets import revoke_secret

        revoked = _run(lambda engine: revoke_secret(engine, vxp_system))
        if revoked:
            record_action(
                operator_event("vxp_secret_revoke", Actor.command_line(), unit=vxp_system)
            )
        click.echo(f"revoked {revoked} façade secret(s); refused from the next request")
        sys.exit(EXIT_OK if revoked else 1)
    count = _run(lambda engine: revoke_tokens(engine, token_id=token_id, unit=unit))
    if count:
        which = {"token_id": token_id} if token_id else {"unit": unit}
        record_action(operator_event("token_revoke", Actor.command_line(), revoked=count, **which))
    click.echo(
        f"revoked {count} token(s); running gateways refuse them within "
        f"{settings().api.token_cache} s (GATEWAY_API_TOKEN_CACHE)"
    )
    sys.exit(EXIT_OK if count else 1)


@tokens.command("list")
def tokens_list() -> None:
    """List tokens (ids, units, roles, dates; never the secrets)."""
    from gateway.service.vxp_secrets import list_systems

    for t in _run(list_tokens):
        state = "revoked" if t.revoked_at else "active"
        click.echo(f"{t.token_id}  {t.unit:<16} {t.role:<8} {state}  created {t.created_at}")
    for s in _run(list_systems):
        state = "revoked" if s.revoked_at else "active"
        click.echo(f"{'vxp':<12}  {s.system_id:<16} {'vxp':<8} {state}  created {s.created_at}")


@click.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run in this folder and keep it (database, keys, bus) instead of a temporary one.",
)
@click.option(
    "--federated",
    is_flag=True,
    help="Two provinces, each with its own gateway, each the other's upstream link.",
)
def demo(keep: Path | None, federated: bool) -> None:
    """Watch the gateway at work in under a minute, with nothing to set up.

    Starts an embedded gateway (SQLite, local bus, the sample province, a fresh development
    PKI), lets simulated agency systems send signed letters with attachments to each other over
    the HTTP API, fetch and acknowledge them, answer with statuses, recall one letter, and try
    things the gateway must refuse; then prints a summary and checks the whole ledger and one
    receipt the way an auditor would.

    With --federated: two provinces' gateways linked to each other; a letter from a commune of
    one to a department of the other, its statuses, a recall, one gateway stopped and started
    again, and the letter's path through both ledgers with both receipts verified.
    """
    from gateway.demo import demo_in_temporary_folder
    from gateway.demo_federated import federated_demo_in_temporary_folder

    logging.basicConfig(level=logging.ERROR if federated else logging.WARNING)
    try:
        if federated:
            federated_demo_in_temporary_folder(keep, click.echo)
        else:
            demo_in_temporary_folder(keep, click.echo)
    except (ConfigError, GatewayError) as e:
        fail_environment(e.message)


@click.group()
def webhooks() -> None:
    """The secrets that sign the gateway's calls to push units' webhooks."""


@webhooks.command("secret")
@click.argument("unit")
@click.option(
    "--rotate",
    is_flag=True,
    help="Start a new secret; the previous one still signs for GATEWAY_PUSH_SECRET_OVERLAP hours.",
)
@click.option("--json", "as_json", is_flag=True, help="Print unit, generation and secret as JSON.")
def webhooks_secret(unit: str, rotate: bool, as_json: bool) -> None:
    """Print a push unit's webhook secret (whsec_…), for its receiver to check signatures.

    Every call to the unit's webhook carries webhook-id, webhook-timestamp and
    webhook-signature (HMAC-SHA256 of id.timestamp.body under this secret; docs/api.md shows
    the receiver's check). The secret is made on first use; run this where the gateway runs
    (it reads the webhook master key in GATEWAY_HOME)."""
    from datetime import timedelta

    from gateway.cli.units import open_directory
    from gateway.service.webhooks import WebhookSigner, master_key

    config = settings()
    found = open_directory(None).get(unit)
    if found is None:
        fail_environment(f"{unit} is not in the unit directory")
    overlap = timedelta(hours=config.push.secret_overlap)
    issued = _run(
        lambda engine: WebhookSigner(engine, master_key(config.home), overlap).issue(
            unit, rotate=rotate
        )
    )
    if rotate:
        record_action(
            operator_event(
                "webhook_secret_rotate",
                Actor.command_line(),
                unit=unit,
                generation=issued.generation,
            )
        )
    if as_json:
        click.echo(
            json.dumps({"unit": unit, "generation": issued.generation, "secret": issued.secret})
        )
        return
    click.echo(issued.secret)
    note = f"webhook secret {issued.generation} of {unit}"
    if rotate and issued.generation > 1:
        note += f"; the previous one still signs for {config.push.secret_overlap} h"
    if str(found.delivery) != "push":
        note += f" (note: {unit} is delivered by {found.delivery}, not push)"
    click.echo(note, err=True)
