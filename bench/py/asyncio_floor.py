"""The floor of one awaited Redis round trip from asyncio, for the enqueue race (RESULTS.md).

    python bench/py/asyncio_floor.py [host:port] [n]

Sends `n` PINGs, then `n` EVALSHAs of a script shaped like an enqueue (a 12-field HSET, a ZADD
and a PUBLISH), one at a time over one asyncio stream, and prints the wall and CPU time per
call. No client library: what is left is the event loop, the syscalls and Redis. A producer
cannot enqueue one job at a time from asyncio faster than the second figure. Its two keys
(`asyncio-floor:job`, `asyncio-floor:q`) are deleted at the end.
"""

from __future__ import annotations

import asyncio
import sys
import time

SCRIPT = (
    b"redis.call('HSET', KEYS[1], 'a', ARGV[1], 'b', ARGV[2], 'c', ARGV[3], 'd', ARGV[4], "
    b"'e', ARGV[5], 'f', ARGV[6], 'g', ARGV[7], 'h', ARGV[8], 'i', ARGV[9], 'j', ARGV[10], "
    b"'k', ARGV[11], 'l', ARGV[12]) redis.call('ZADD', KEYS[2], ARGV[13], KEYS[1]) "
    b"redis.call('PUBLISH', 'asyncio-floor', '1') return 1"
)


def pack(*args: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def main() -> None:
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:6379").partition(
        ":"
    )
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    reader, writer = await asyncio.open_connection(host, int(port or 6379))

    async def timed(label: str, command: bytes | None, make: object = None) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            writer.write(command if command is not None else make(i))  # type: ignore[operator]
            await reader.readline()
        wall_us = (time.perf_counter() - started) / n * 1e6
        cpu_us = (time.process_time() - cpu) / n * 1e6
        print(f"{label}: {wall_us:.0f} us wall, {cpu_us:.0f} us CPU per call")

    await timed("PING", pack("PING"))
    writer.write(pack("SCRIPT", "LOAD", SCRIPT))
    await reader.readline()
    sha = (await reader.readline()).strip()
    pad = b"x" * 30
    await timed(
        "EVALSHA (enqueue-shaped)",
        None,
        lambda i: pack(
            "EVALSHA", sha, 2, "asyncio-floor:job", "asyncio-floor:q", *[pad] * 12, i
        ),
    )
    writer.write(pack("DEL", "asyncio-floor:job", "asyncio-floor:q"))
    await reader.readline()
    writer.close()


if __name__ == "__main__":
    asyncio.run(main())
