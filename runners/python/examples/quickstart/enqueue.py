"""Enqueue two jobs and wait for their results.

Run from this directory (it reads ./rrq.toml; RRQ_REDIS_DSN overrides the Redis address)
while `npx rrq worker run --config rrq.toml` is running.
"""

from __future__ import annotations

import asyncio
import os

from rrqkit import Producer


async def main() -> None:
    timeout = float(os.environ.get("EXAMPLE_TIMEOUT", "30"))
    async with Producer.from_toml() as producer:
        email_job = await producer.enqueue(
            "send_welcome_email", {"to": "ada@example.com"}, unique_key="welcome:ada"
        )
        sum_job = await producer.enqueue("sum_numbers", {"numbers": [1, 2, 3.5]})
        print(f"enqueued {email_job} and {sum_job}")
        for job_id in (email_job, sum_job):
            result = await producer.wait_for_completion(job_id, timeout_seconds=timeout)
            if result is None:
                print(f"{job_id}: still running after {timeout}s")
            else:
                print(f"{job_id}: {result.status} {result.result}")


if __name__ == "__main__":
    asyncio.run(main())
