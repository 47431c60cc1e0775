"""``rrqkit-producer-adapter``: drive the producer with JSON lines.

See conformance/PRODUCER_ADAPTER.md.

Reads one JSON command per line on stdin and writes one JSON reply per line on stdout, in
order; exits 0 when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .config import load_toml
from .errors import ProducerError
from .producer import Producer, load_toml_catalog

__all__ = ["main"]


class Adapter:
    def __init__(self) -> None:
        self.producer: Producer | None = None

    async def _replace(self, producer: Producer) -> None:
        old, self.producer = self.producer, producer
        if old is not None:
            await old.close()

    async def _active(self) -> Producer:
        if self.producer is None:
            self.producer = Producer.from_toml()
        return self.producer

    async def op_configure(self, cmd: dict[str, Any]) -> Any:
        config = cmd.get("config")
        await self._replace(Producer({} if config is None else config))
        return None

    async def op_load_config(self, cmd: dict[str, Any]) -> Any:
        config = load_toml(cmd.get("path"))
        # with the job catalog rrq.toml names (job_catalog), as Producer.from_toml
        await self._replace(Producer(config, catalog=load_toml_catalog(cmd.get("path"))))
        return config.to_dict()

    async def op_enqueue(self, cmd: dict[str, Any]) -> Any:
        producer = await self._active()
        name: Any = cmd.get("function_name")
        return await producer.enqueue(name, cmd.get("params"), cmd.get("options"))

    async def op_enqueue_with_rate_limit(self, cmd: dict[str, Any]) -> Any:
        producer = await self._active()
        name: Any = cmd.get("function_name")
        return await producer.enqueue_with_rate_limit(name, cmd.get("params"), cmd.get("options"))

    async def op_enqueue_with_debounce(self, cmd: dict[str, Any]) -> Any:
        producer = await self._active()
        name: Any = cmd.get("function_name")
        return await producer.enqueue_with_debounce(name, cmd.get("params"), cmd.get("options"))

    async def op_enqueue_many(self, cmd: dict[str, Any]) -> Any:
        items = cmd.get("items")
        if not isinstance(items, list):
            raise ProducerError("invalid_argument", "items must be a list")
        producer = await self._active()
        return await producer.enqueue_many(items)

    async def op_get_job_status(self, cmd: dict[str, Any]) -> Any:
        producer = await self._active()
        job_id: Any = cmd.get("job_id")
        status = await producer.get_job_status(job_id)
        return None if status is None else status.to_dict()

    async def op_wait_for_completion(self, cmd: dict[str, Any]) -> Any:
        producer = await self._active()
        kwargs: dict[str, Any] = {}
        if cmd.get("timeout_seconds") is not None:
            kwargs["timeout_seconds"] = cmd["timeout_seconds"]
        if cmd.get("block_interval_seconds") is not None:
            kwargs["block_interval_seconds"] = cmd["block_interval_seconds"]
        job_id: Any = cmd.get("job_id")
        status = await producer.wait_for_completion(job_id, **kwargs)
        return None if status is None else status.to_dict()

    async def op_cancel(self, cmd: dict[str, Any]) -> Any:
        producer = await self._active()
        job_id: Any = cmd.get("job_id")
        return (await producer.cancel(job_id)).to_dict()

    async def handle(self, line: str) -> dict[str, Any]:
        try:
            cmd = json.loads(line)
        except ValueError as exc:
            return _error(None, "adapter_error", f"malformed command line: {exc}")
        if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
            return _error(None, "adapter_error", "a command is an object with a string 'op'")
        command_id = cmd.get("id")
        handler: Callable[[dict[str, Any]], Awaitable[Any]] | None = getattr(
            self, f"op_{cmd['op']}", None
        )
        if handler is None:
            return _error(command_id, "adapter_error", f"unknown op '{cmd['op']}'")
        try:
            result = await handler(cmd)
        except ProducerError as exc:
            reply = _error(command_id, exc.code, exc.message)
            if exc.field is not None:  # a contract failure: where the params break it
                reply["error"]["field"] = exc.field
            return reply
        except Exception as exc:
            return _error(command_id, "adapter_error", f"{type(exc).__name__}: {exc}")
        return {"id": command_id, "ok": True, "result": result}

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.close()


def _error(command_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": command_id, "ok": False, "error": {"code": code, "message": message}}


async def _run() -> None:
    adapter = Adapter()
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            reply = await adapter.handle(line)
            sys.stdout.write(json.dumps(reply, ensure_ascii=False, separators=(",", ":")) + "\n")
            sys.stdout.flush()
    finally:
        await adapter.close()


def main() -> None:
    asyncio.run(_run())
    sys.exit(0)


if __name__ == "__main__":
    main()
