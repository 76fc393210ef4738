"""Putting a gateway together from the settings, and taking it apart again.

Embedded default (nothing configured): SQLite and the LocalBus under ``./var/``, a copy of the
sample directory in ``./var/directory.csv`` and a development PKI under ``./var/keys/``, both
made on first start. Production parts
are chosen by GATEWAY_AMQP_URL, GATEWAY_DATABASE_URL, GATEWAY_DIRECTORY, GATEWAY_KEYS,
GATEWAY_TRUST and GATEWAY_CRL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from adapters.upstream.links import load_links
from adapters.upstream.relay import Federation
from gateway.bus import Bus, RetryPolicy, open_bus
from gateway.config import Settings
from gateway.db.engine import UNAVAILABLE, unavailable
from gateway.db.migrate import upgrade
from gateway.db.wakeups import Wakeups
from gateway.directory import SAMPLE_PATH, load_directory
from gateway.errors import ConfigError
from gateway.ledger import SqlLedger, open_ledger
from gateway.ledger.identity import bind_identity
from gateway.ledger.keys import load_gateway_key
from gateway.service.admin import Admin
from gateway.service.core import Gateway
from gateway.service.delivery import Deliverer, client_cert
from gateway.service.evidence import configured_witnesses
from gateway.service.moves import TransitionRecorder
from gateway.service.notices import Notices
from gateway.service.presence import HEARTBEAT_SECONDS, Presence
from gateway.service.reload import WATCH_SECONDS, Reloader, Sources
from gateway.service.tokens import TokenChecker
from gateway.service.webhooks import WebhookSigner, master_key
from gateway.service.writer import Writer
from gateway.trust import KeysLayout, init_keys

log = logging.getLogger(__name__)

RELAY_SECONDS = 10.0  # how often unpublished copies are looked for
SWEEP_SECONDS = 30.0  # how often inboxes are checked for expired copies


def directory_file(
    settings: Settings, *, create: bool = False, say: Callable[[str], None] = log.info
) -> Path:
    """GATEWAY_DIRECTORY, else ``<home>/directory.csv``: the gateway's own copy of the
    bundled sample province, made on first start (``create``) so that units can be added and
    changed. Before that copy exists, readers get the bundled sample itself."""
    if settings.directory is not None:
        return settings.directory
    path = settings.home / "directory.csv"
    if path.exists():
        return path
    if not create:
        return SAMPLE_PATH
    say(f"no GATEWAY_DIRECTORY: the sample province copied to {path}, the directory from now on")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE_PATH, path)
    return path


def keys_folder(settings: Settings, say: Callable[[str], None] = log.info) -> Path:
    """GATEWAY_KEYS, or ``<home>/keys``, created with a development PKI on first use."""
    if settings.keys is not None:
        return settings.keys
    folder = settings.home / "keys"
    if not KeysLayout(folder).trust_pem.exists():
        say(f"no GATEWAY_KEYS: creating a development PKI for every unit in {folder}")
        init_keys(folder, load_directory(directory_file(settings)))
    return folder


def sources(settings: Settings, keys: Path, say: Callable[[str], None] = log.info) -> Sources:
    """The files the gateway reads its directory and trust from (GATEWAY_DIRECTORY,
    GATEWAY_TRUST and GATEWAY_CRL, else the defaults under home and the key folder)."""
    layout = KeysLayout(keys)
    trust = settings.trust or layout.trust_pem
    if not trust.exists():
        raise ConfigError(f"the trust bundle {trust} does not exist (GATEWAY_TRUST)")
    return Sources(
        directory_file(settings, create=True, say=say), trust, settings.crl or layout.crl_pem
    )


@dataclass
class Runtime:
    """A started gateway: its parts and background tasks."""

    settings: Settings
    gateway: Gateway
    ledger: SqlLedger
    bus: Bus
    tokens: TokenChecker
    deliverer: Deliverer
    reloader: Reloader
    admin: Admin
    presence: Presence
    federation: Federation
    wakeups: Wakeups
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def stopping(self) -> None:
        """The server stops taking requests: those waiting for a change are answered now."""
        self.wakeups.close()

    async def stop(self, grace: float = 10.0) -> None:
        """Consumers finish their current message, background loops stop, all is closed."""
        log.info("stopping: consumers finish their current message (up to %g s)", grace)
        self.stopping()
        await self.federation.stop(grace)
        await self.deliverer.stop(grace)
        try:
            async with asyncio.timeout(grace):
                await self.gateway.drain()
        except TimeoutError:
            log.warning("copies still unpublished at shutdown; the relay publishes them at start")
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close(grace)
        try:
            await self.presence.stop()
        except Exception:  # the database is gone: the entry ages out
            log.warning("could not remove this process from the running gateways", exc_info=True)
        await self.ledger.engine.dispose()
        log.info("stopped: nothing accepted is lost")


async def _every(seconds: float, work: Callable[[], object], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            result = work()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("%s failed; trying again in %.0f s", name, seconds)


async def start_runtime(
    settings: Settings,
    *,
    say: Callable[[str], None] = log.info,
    policy: RetryPolicy | None = None,
    intervals: tuple[float, float, float] = (RELAY_SECONDS, SWEEP_SECONDS, WATCH_SECONDS),
) -> Runtime:
    """Open the database (migrating it), the ledger, the bus and the consumers.

    ``policy`` overrides the retry schedule of the settings (tests use sub-second ones);
    ``intervals`` are the relay's, the inbox sweeper's and the file watcher's periods in
    seconds."""
    say(f"gateway home {settings.home.resolve()} (GATEWAY_HOME): local state lives there")
    keys = keys_folder(settings, say)
    configured_witnesses(settings.ledger)  # a malformed witness key stops the start
    files = sources(settings, keys, say)
    directory, trust, digests = files.load()
    key = load_gateway_key(keys)
    links = load_links(settings.federation.links)
    ledger = open_ledger(settings, key=key.private_key, certificate_chain=key.certificate_chain)
    policy = policy or RetryPolicy.from_settings(settings.bus)
    native_amqp = settings.amqp_url is not None
    # Copies that wait in a pull inbox: pull units', and on the embedded bus amqp units' too.
    inbox_modes = frozenset({"pull"} if native_amqp else {"pull", "amqp"})
    writer = Writer(ledger)
    wakeups = Wakeups(ledger.engine)
    notices = Notices(writer, ledger.engine)
    bus = open_bus(
        settings,
        observer=TransitionRecorder(writer, inbox_modes),
        policy=policy,
        on_notice=notices.reopen,
    )
    presence = Presence(ledger.engine)
    try:  # what needs the database and the broker to answer
        await upgrade(ledger.engine)
        identity = await bind_identity(ledger.engine, ledger.origin, ledger.signer)
        say(
            f"database: {ledger.engine.dialect.name}, schema up to date; ledger "
            f"{identity.origin}, {await ledger.size()} entries"
        )
        await bus.start()
        await bus.declare([*(unit.code for unit in directory), *(link.queue for link in links)])
        say(f"bus: {bus.where}, {len(directory)} unit queues declared")
        if len(links):
            say(f"upstream links: {', '.join(f'{link.name} ({link.url})' for link in links)}")
        await presence.start()
        await wakeups.start()
    except BaseException as e:
        with contextlib.suppress(Exception):
            await bus.close(1.0)
        await ledger.engine.dispose()
        if isinstance(e, UNAVAILABLE):
            raise unavailable(settings, e) from e
        raise
    gateway = Gateway(
        settings=settings,
        directory=directory,
        trust=trust,
        ledger=ledger,
        writer=writer,
        wakeups=wakeups,
        bus=bus,
        inbox_modes=inbox_modes,
        policy=policy,
        links=links,
    )
    push = settings.push
    signer = WebhookSigner(
        ledger.engine, master_key(settings.home), timedelta(hours=push.secret_overlap)
    )
    deliverer = Deliverer(gateway, signer, native_amqp=native_amqp, client_cert=client_cert(push))
    reloader = Reloader(files, gateway, deliverer, digests)
    tokens = TokenChecker(ledger.engine, settings.api.token_cache)
    admin = Admin(gateway, reloader, tokens)
    federation = Federation(gateway)
    runtime = Runtime(
        settings,
        gateway,
        ledger,
        bus,
        tokens,
        deliverer,
        reloader,
        admin,
        presence,
        federation,
        wakeups,
    )
    await deliverer.start()
    await federation.start()
    relay, sweep, watch = intervals
    runtime.tasks = [
        asyncio.create_task(_every(relay, gateway.publish_pending, "relay")),
        asyncio.create_task(_every(sweep, gateway.inboxes.expire, "inbox expiry")),
        asyncio.create_task(_every(sweep, deliverer.push_notices, "sender notices")),
        asyncio.create_task(_every(sweep, deliverer.amqp_notices, "sender notices on AMQP")),
        asyncio.create_task(ledger.run_checkpointer()),
        asyncio.create_task(reloader.watch(watch)),
        asyncio.create_task(_every(HEARTBEAT_SECONDS, presence.beat, "heartbeat")),
    ]
    await gateway.publish_pending(older_than=0)
    say(
        f"gateway ready: {len(directory)} units, ledger on {ledger.engine.dialect.name}, "
        f"bus {type(bus).__name__}, keys {keys}"
    )
    return runtime
