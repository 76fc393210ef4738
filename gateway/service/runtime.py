"""Putting a gateway together from the settings, and taking it apart again.

Embedded default (nothing configured): SQLite and the LocalBus under ``./var/``, the sample
directory, and a development PKI made under ``./var/keys/`` on first start. Production parts
are chosen by GATEWAY_AMQP_URL, GATEWAY_DATABASE_URL, GATEWAY_DIRECTORY, GATEWAY_KEYS,
GATEWAY_TRUST and GATEWAY_CRL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.bus import Bus, RetryPolicy, open_bus
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.directory import load_directory
from gateway.errors import ConfigError
from gateway.ledger import SqlLedger, open_ledger
from gateway.ledger.keys import load_gateway_key
from gateway.service.core import Gateway
from gateway.service.delivery import Deliverer
from gateway.service.moves import TransitionRecorder
from gateway.service.tokens import TokenChecker
from gateway.service.writer import Writer
from gateway.trust import KeysLayout, TrustStore, init_keys

log = logging.getLogger(__name__)

RELAY_SECONDS = 10.0  # how often unpublished copies are looked for
SWEEP_SECONDS = 30.0  # how often inboxes are checked for expired copies


def keys_folder(settings: Settings, say: Callable[[str], None] = log.info) -> Path:
    """GATEWAY_KEYS, or ``<var_dir>/keys``, created with a development PKI on first use."""
    if settings.keys is not None:
        return settings.keys
    folder = settings.var_dir / "keys"
    if not KeysLayout(folder).trust_pem.exists():
        say(f"no GATEWAY_KEYS: creating a development PKI for every unit in {folder}")
        init_keys(folder, load_directory(settings.directory))
    return folder


def trust_store(settings: Settings, keys: Path) -> TrustStore:
    layout = KeysLayout(keys)
    trust = settings.trust or layout.trust_pem
    crl = settings.crl or (layout.crl_pem if layout.crl_pem.exists() else None)
    if not trust.exists():
        raise ConfigError(f"the trust bundle {trust} does not exist (GATEWAY_TRUST)")
    return TrustStore.from_files(trust, crl)


@dataclass
class Runtime:
    """A started gateway: its parts and background tasks."""

    settings: Settings
    gateway: Gateway
    ledger: SqlLedger
    bus: Bus
    tokens: TokenChecker
    deliverer: Deliverer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace: float = 10.0) -> None:
        """Consumers finish their current message, background loops stop, all is closed."""
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
        await self.ledger.engine.dispose()


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
    intervals: tuple[float, float] = (RELAY_SECONDS, SWEEP_SECONDS),
) -> Runtime:
    """Open the database (migrating it), the ledger, the bus and the consumers.

    ``policy`` overrides the retry schedule of the settings (tests use sub-second ones);
    ``intervals`` are the relay's and the inbox sweeper's periods in seconds."""
    directory = load_directory(settings.directory)
    keys = keys_folder(settings, say)
    trust = trust_store(settings, keys)
    key = load_gateway_key(keys)
    ledger = open_ledger(settings, key=key.private_key, certificate_chain=key.certificate_chain)
    await upgrade(ledger.engine)
    policy = policy or RetryPolicy.from_settings(settings.bus)
    native_amqp = settings.amqp_url is not None
    # Copies that wait in a pull inbox: pull units', and on the embedded bus amqp units' too.
    inbox_modes = frozenset({"pull"} if native_amqp else {"pull", "amqp"})
    writer = Writer(ledger)
    bus = open_bus(settings, observer=TransitionRecorder(writer, inbox_modes), policy=policy)
    await bus.start()
    await bus.declare(unit.code for unit in directory)
    gateway = Gateway(
        settings=settings,
        directory=directory,
        trust=trust,
        ledger=ledger,
        writer=writer,
        bus=bus,
        inbox_modes=inbox_modes,
        policy=policy,
    )
    deliverer = Deliverer(gateway, native_amqp=native_amqp)
    runtime = Runtime(settings, gateway, ledger, bus, TokenChecker(ledger.engine), deliverer)
    await deliverer.start()
    relay, sweep = intervals
    runtime.tasks = [
        asyncio.create_task(_every(relay, gateway.publish_pending, "relay")),
        asyncio.create_task(_every(sweep, gateway.inboxes.expire, "inbox expiry")),
        asyncio.create_task(ledger.run_checkpointer()),
    ]
    await gateway.publish_pending(older_than=0)
    say(
        f"gateway ready: {len(directory)} units, ledger on {ledger.engine.dialect.name}, "
        f"bus {type(bus).__name__}, keys {keys}"
    )
    return runtime
