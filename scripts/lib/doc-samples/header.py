# The scaffold prepended to every Python doc sample in compile mode (the sample itself goes into
# an `async def`, so top-level `await` is allowed): the names a reader's application already has.
# ruff checks the result for undefined names (F821) and syntax errors.
import asyncio
import logging
from typing import Any

from rrqkit import Producer, Registry, job_context

registry = Registry()
producer: Producer = Producer.from_toml()
log = logging.getLogger("app")
audit = log
card: str = "4242"
user: str = "ada"
address: str = "1 Main St"
job_id: str = "job-1"


def is_valid_card(card: Any) -> bool: ...
async def upstream_ready() -> bool: ...
async def alert(message: str) -> None: ...
async def copy_rows(table: str) -> int: ...
async def remove_partial_export() -> None: ...
def current_traceparent() -> str: ...


__all__ = ["asyncio", "job_context", "producer", "registry"]
