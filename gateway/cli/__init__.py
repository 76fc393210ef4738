"""The ``gateway`` command: one entry point, a group of subcommands per domain."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gateway")
def main() -> None:
    """Inter-agency edXML document exchange gateway.

    Validates signed edXML packages (QCVN 102:2016), verifies their XMLDSig signatures against
    the government trust store, routes them to every recipient unit over RabbitMQ and keeps a
    tamper-evident delivery ledger.

    Exit codes: 0 ok, 1 rejected or invalid input, 2 usage or environment error.
    """


def _register() -> None:
    # One line per domain; each module owns its subcommands.
    from gateway.cli.adapter import adapter
    from gateway.cli.admin import admin, backlog
    from gateway.cli.audit import audit
    from gateway.cli.bench import bench
    from gateway.cli.bus import bus
    from gateway.cli.client import inbox, receipts, send, status
    from gateway.cli.config import config
    from gateway.cli.evidence import audit_bundle, audit_verify_bundle
    from gateway.cli.files import extract, submit
    from gateway.cli.ledger import db, ledger
    from gateway.cli.links import links
    from gateway.cli.notices import inbox_notices
    from gateway.cli.service import demo, serve, tokens, webhooks
    from gateway.cli.trust import keys, sign, verify
    from gateway.cli.units import units
    from gateway.cli.validate import validate
    from gateway.cli.witness import witness

    main.add_command(validate)
    main.add_command(bus)
    main.add_command(units)
    main.add_command(links)
    main.add_command(keys)
    main.add_command(sign)
    main.add_command(verify)
    main.add_command(db)
    main.add_command(ledger)
    main.add_command(audit)
    audit.add_command(audit_bundle)
    audit.add_command(audit_verify_bundle)
    main.add_command(witness)
    main.add_command(send)
    main.add_command(submit)
    main.add_command(inbox)
    inbox.add_command(extract)
    inbox.add_command(inbox_notices)
    main.add_command(status)
    main.add_command(receipts)
    main.add_command(serve)
    main.add_command(tokens)
    main.add_command(webhooks)
    main.add_command(demo)
    main.add_command(bench)
    main.add_command(admin)
    main.add_command(backlog)
    main.add_command(config)
    main.add_command(adapter)


_register()
