"""Producer side of the Python race (bench/scenarios/python-race.ts), one ecosystem per run.

    python enqueue_peers.py <peer> <redis_url> <mode> <jobs> [options]

peer: celery | rq | arq | dramatiq (run with that peer's virtualenv, bench/.venv-peers/<peer>)
or rrqkit (run with the repository's .venv). mode:

- ``fill``: enqueue ``jobs`` jobs of ``--task`` as fast as the ecosystem allows (the
  burn-downs' pre-enqueued queue);
- ``single``: ``--callers`` callers each sending one job at a time (several callers are asyncio
  tasks, so only for the async producers: arq, rrqkit);
- ``bulk``: batches of ``--batch`` through the ecosystem's bulk call, or its fastest documented
  way to send many when it has none (see ``Peer.many``);
- ``latency``: ``stamp`` jobs (rrqkit: ``echo``) sent open loop at ``--rate`` jobs/s; each job's
  key and send time (epoch ms, taken before the call) go to ``--out``, one ``key ms`` line each.

Prints ``{"jobs": N, "elapsed_ms": T}``; connecting happens before the clock starts, and a warm-up
send never lands in the measured queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: One call that sends job ``i`` of the task (returns its key for latency); async or not.
Send = Callable[[int], Any]
#: Sends jobs ``lo``..``hi - 1`` in one go.
Many = Callable[[int, int], Any]


class Peer:
    """One ecosystem's producer: how to send one job and many, and how to connect first."""

    def __init__(
        self, one: Send, many: Many, is_async: bool, fill: Many | None = None
    ) -> None:
        self.one = one
        self.many = many
        self.is_async = is_async
        #: How to fill a queue (unmeasured), when faster than ``many``.
        self.fill = fill or many


def task_args(task: str, arg: int, i: int) -> Any:
    """The argument of job ``i``: ``noop(i)``, ``sleep(ms)``, ``stamp(key)``."""
    return arg if task == "sleep" else (str(i) if task == "stamp" else i)


def celery_peer(url: str, task: str, arg: int) -> Peer:
    """Celery: ``apply_async`` per job; "bulk" is ``group(...).apply_async()`` (no bulk call)."""
    os.environ["BENCH_REDIS_URL"] = url
    import celery_app
    from celery import group, uuid

    sig = celery_app.app.tasks[task]
    # Connects (and declares the queue's bindings) on a queue nobody measures.
    sig.apply_async((task_args(task, arg, -1),), queue="bench-warm-up")

    def one(i: int) -> Any:
        sig.apply_async((task_args(task, arg, i),))
        return str(i)

    def many(lo: int, hi: int) -> None:
        group(sig.s(task_args(task, arg, i)) for i in range(lo, hi)).apply_async()

    def fill(lo: int, hi: int) -> None:
        # The messages apply_async sends, without its subscription to each result's channel
        # (the Redis backend's on_task_call): filling is not measured, and that doubles its time.
        with celery_app.app.producer_or_acquire() as producer:
            for i in range(lo, hi):
                args = (task_args(task, arg, i),)
                options = celery_app.app.amqp.router.route({}, task, args, {})
                message = celery_app.app.amqp.create_task_message(
                    uuid(), task, args, {}
                )
                celery_app.app.amqp.send_task_message(
                    producer, task, message, **options
                )

    return Peer(one, many, False, fill)


def rq_peer(url: str, task: str, arg: int) -> Peer:
    """RQ: ``Queue.enqueue`` per job, ``Queue.enqueue_many`` in bulk (one pipeline)."""
    import rq_app
    from redis import Redis
    from rq import Queue

    conn = Redis.from_url(url)
    conn.ping()
    queue = Queue("default", connection=conn)
    fn = getattr(rq_app, task)

    def one(i: int) -> Any:
        queue.enqueue(fn, task_args(task, arg, i))
        return str(i)

    def many(lo: int, hi: int) -> None:
        queue.enqueue_many(
            [
                Queue.prepare_data(fn, args=(task_args(task, arg, i),))
                for i in range(lo, hi)
            ]
        )

    return Peer(one, many, False)


async def arq_peer(url: str, task: str, arg: int) -> Peer:
    """arq: ``enqueue_job`` per job; "bulk" is ``asyncio.gather`` of them (no bulk call)."""
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(url))
    await pool.ping()

    async def one(i: int) -> Any:
        await pool.enqueue_job(task, task_args(task, arg, i))
        return str(i)

    async def many(lo: int, hi: int) -> None:
        await asyncio.gather(*(one(i) for i in range(lo, hi)))

    return Peer(one, many, True)


def dramatiq_peer(url: str, task: str, arg: int) -> Peer:
    """Dramatiq: ``Actor.send`` per job; "bulk" is ``group(...).run()`` (one send per message)."""
    os.environ["BENCH_REDIS_URL"] = url
    import dramatiq_app
    from dramatiq import group

    actor = getattr(dramatiq_app, task)
    dramatiq_app.broker.client.ping()

    def one(i: int) -> Any:
        actor.send(task_args(task, arg, i))
        return str(i)

    def many(lo: int, hi: int) -> None:
        group(actor.message(task_args(task, arg, i)) for i in range(lo, hi)).run()

    return Peer(one, many, False)


async def rrqkit_peer(url: str, task: str, arg: int) -> Peer:
    """rrqkit's Python producer: ``enqueue`` per job, ``enqueue_many`` in bulk."""
    from rrqkit import Producer

    producer = Producer({"redis_dsn": url})
    await producer.get_job_status("bench-warm-up")  # connects before the clock starts
    name = {"noop": "echo", "stamp": "echo"}.get(task, task)

    def params(i: int) -> dict[str, Any]:
        return {"ms": arg} if task == "sleep" else {"i": i}

    async def one(i: int) -> Any:
        return await producer.enqueue(name, params(i))

    async def many(lo: int, hi: int) -> None:
        await producer.enqueue_many(
            [{"function_name": name, "params": params(i)} for i in range(lo, hi)]
        )

    return Peer(one, many, True)


async def make_peer(name: str, url: str, task: str, arg: int) -> Peer:
    """The producer of ``name``."""
    if name == "celery":
        return celery_peer(url, task, arg)
    if name == "rq":
        return rq_peer(url, task, arg)
    if name == "arq":
        return await arq_peer(url, task, arg)
    if name == "dramatiq":
        return dramatiq_peer(url, task, arg)
    if name == "rrqkit":
        return await rrqkit_peer(url, task, arg)
    raise SystemExit(f"unknown peer {name!r}")


async def call(peer: Peer, fn: Callable[..., Any], *args: int) -> Any:
    """Calls a send function of ``peer``, awaiting it when the producer is async."""
    result = fn(*args)
    return await result if peer.is_async else result


async def run_single(peer: Peer, jobs: int, callers: int) -> None:
    """``callers`` callers, each sending one job at a time until ``jobs`` were sent."""
    if callers > 1 and not peer.is_async:
        raise SystemExit("several callers need an async producer")
    counter = iter(range(jobs))

    async def caller() -> None:
        for i in counter:
            await call(peer, peer.one, i)

    await asyncio.gather(*(caller() for _ in range(callers)))


async def run_many(peer: Peer, jobs: int, batch: int, fn: Many) -> None:
    """Batches of ``batch`` through ``fn`` (``peer.many`` or ``peer.fill``)."""
    for lo in range(0, jobs, batch):
        await call(peer, fn, lo, min(lo + batch, jobs))


async def run_latency(peer: Peer, jobs: int, rate: float, out: str) -> None:
    """Open loop: job i is sent at i / rate s whether or not earlier ones finished."""
    sent: list[tuple[Any, float]] = []
    pending: list[Awaitable[None]] = []
    # At most 50 sends in flight (the 50 callers of enqueue-single-50): redis.asyncio opens a
    # connection per concurrent call, so a stall on a busy machine otherwise snowballs into
    # Redis's maxclients. A send waiting here keeps its scheduled time: the wait counts.
    slots = asyncio.Semaphore(50)

    async def send_async(i: int, t: float) -> None:
        async with slots:
            sent.append((await peer.one(i), t))

    begin = time.perf_counter()
    next_job = 0
    while next_job < jobs:
        due = min(jobs, int((time.perf_counter() - begin) * rate) + 1)
        for i in range(next_job, due):
            t = time.time() * 1000
            if peer.is_async:
                pending.append(asyncio.ensure_future(send_async(i, t)))
            else:
                sent.append((peer.one(i), t))
        next_job = due
        if next_job < jobs:
            await asyncio.sleep(max(0.0, begin + next_job / rate - time.perf_counter()))
    await asyncio.gather(*pending)
    # Written after the last send: the file's I/O never delays one.
    lines = "".join(f"{key} {t:.3f}\n" for key, t in sent)
    await asyncio.to_thread(_write, out, lines)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer")
    parser.add_argument("url")
    parser.add_argument("mode", choices=["fill", "single", "bulk", "latency"])
    parser.add_argument("jobs", type=int)
    parser.add_argument("--task", default="noop", choices=["noop", "sleep", "stamp"])
    parser.add_argument("--arg", type=int, default=10, help="sleep: milliseconds")
    parser.add_argument("--callers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--out", default="")
    a = parser.parse_args()
    task = "stamp" if a.mode == "latency" else a.task
    peer = await make_peer(a.peer, a.url, task, a.arg)
    started = time.perf_counter()
    if a.mode == "single":
        await run_single(peer, a.jobs, max(1, a.callers))
    elif a.mode == "latency":
        await run_latency(peer, a.jobs, a.rate, a.out)
    elif a.mode == "bulk":
        await run_many(peer, a.jobs, a.batch, peer.many)
    else:
        await run_many(peer, a.jobs, 1000, peer.fill)
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(json.dumps({"jobs": a.jobs, "elapsed_ms": elapsed_ms}), flush=True)
    # Producers' pools and threads need no orderly close: the process exits here.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
