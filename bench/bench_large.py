"""A scanned letter over HTTP: one signed package with a large attachment (50 MiB by default,
about 70 MB as a package) submitted to a gateway of its own process, fetched by the recipient
and checked byte for byte; reports the time of each step and the gateway's peak memory growth
as a multiple of the package size (goal: at most 4x).

    .venv/bin/python bench/bench_large.py [--mib 50] [--amqp URL --db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path

from gateway.bench.procstat import memory_kib, with_children
from gateway.bench.run import BenchOptions, pull_units, run_tokens, started_gateway
from gateway.client import GatewayClient, build_letter, make_attachment, sign_as_unit, unit
from gateway.directory import load_directory
from gateway.trust import init_keys


def peak_kib(pid: int) -> int:
    return sum(memory_kib(p).get("VmHWM", 0) for p in with_children(pid))


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=50, help="attachment size in MiB")
    parser.add_argument("--amqp", help="RabbitMQ URL (default: the embedded bus)")
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    directory = load_directory()
    (sender,), (recipient,) = pull_units(directory, 1)  # a pull unit has an inbox to fetch from
    with tempfile.TemporaryDirectory(prefix="gateway-large-") as tmp:
        folder = Path(tmp)
        init_keys(folder / "keys", directory)
        started = time.perf_counter()
        scan = os.urandom(args.mib * 1024 * 1024)
        letter = build_letter(
            unit(sender, directory),
            [unit(recipient, directory)],
            "Về việc gửi bản scan hồ sơ",
            attachments=[make_attachment("ho-so.pdf", scan)],
        )
        data = sign_as_unit(letter, folder / "keys")
        print(f"built and signed {len(data) / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")
        options = BenchOptions(amqp_url=args.amqp, database_url=args.db)
        async with (
            started_gateway(folder, options, print) as g,
            run_tokens(g.database_url, [sender, recipient]) as tokens,
        ):
            url, pid = g.url, g.pid
            assert pid is not None  # a gateway of its own
            before = sum(memory_kib(p).get("VmRSS", 0) for p in with_children(pid))
            async with GatewayClient(url, tokens[sender], timeout=300) as gw:
                t = time.perf_counter()
                submitted = await gw.submit(data)
                print(f"submitted: {submitted.status} in {time.perf_counter() - t:.1f} s")
            after_submit = (peak_kib(pid) - before) * 1024
            async with GatewayClient(url, tokens[recipient], timeout=300) as gw:
                (item,) = (await gw.inbox())["items"]
                t = time.perf_counter()
                fetched = await gw.fetch(item["delivery_id"])
                same = hashlib.sha256(fetched.data).digest() == hashlib.sha256(data).digest()
                print(f"fetched in {time.perf_counter() - t:.1f} s, identical: {same}")
                await gw.ack(item["delivery_id"])
            growth = (peak_kib(pid) - before) * 1024
            print(f"peak growth while submitting {after_submit / len(data):.2f}x the package")
            print(
                f"gateway peak memory growth {growth / 1e6:.0f} MB = "
                f"{growth / len(data):.2f}x the package (goal <= 4x)"
            )


if __name__ == "__main__":
    asyncio.run(main())
