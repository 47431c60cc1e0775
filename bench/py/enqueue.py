"""Enqueue-throughput helper for `npm run bench` (bench/scenarios/enqueue.ts).

    python enqueue.py <rrqkit|rrq> <redis_dsn> <single|bulk> <jobs> <callers> <batch>

rrqkit: the rrqkit Python producer (redis.asyncio, one connection pool). rrq: RRQ 0.11's own
producer (`rrq.client.RRQClient`, a Rust FFI called through asyncio.to_thread). single: `callers`
asyncio tasks each await `enqueue` in a loop until `jobs` are queued. bulk: one caller sends
`enqueue_many` batches of `batch` (rrqkit only; RRQ has no bulk call). Prints
`{"jobs": N, "elapsed_ms": T}`; connection set-up is excluded from the time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def main() -> None:
    system, dsn, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    jobs, callers, batch = (
        int(sys.argv[4]),
        max(1, int(sys.argv[5])),
        max(1, int(sys.argv[6])),
    )
    if system == "rrqkit":
        from rrqkit import Producer

        producer = Producer({"redis_dsn": dsn})
        # Connect before the clock starts.
        await producer.get_job_status("bench-warm-up")

        async def one(i: int) -> None:
            await producer.enqueue("echo", {"i": i})

        async def many(lo: int, hi: int) -> None:
            await producer.enqueue_many(
                [{"function_name": "echo", "params": {"i": i}} for i in range(lo, hi)]
            )

        close = producer.close
    elif system == "rrq":
        from rrq.client import RRQClient

        client = RRQClient(config={"redis_dsn": dsn})
        await client.get_job_status("bench-warm-up")

        async def one(i: int) -> None:
            await client.enqueue("echo", {"params": {"i": i}})

        async def many(lo: int, hi: int) -> None:
            raise SystemExit("RRQ's producer has no bulk enqueue")

        close = client.close
    else:
        raise SystemExit(f"unknown system {system}")

    started = time.perf_counter()
    if mode == "single":
        counter = iter(range(jobs))

        async def caller() -> None:
            for i in counter:
                await one(i)

        await asyncio.gather(*(caller() for _ in range(callers)))
    elif mode == "bulk":
        for lo in range(0, jobs, batch):
            await many(lo, min(lo + batch, jobs))
    else:
        raise SystemExit(f"unknown mode {mode}")
    elapsed_ms = (time.perf_counter() - started) * 1000
    await close()
    print(json.dumps({"jobs": jobs, "elapsed_ms": elapsed_ms}))


if __name__ == "__main__":
    asyncio.run(main())
