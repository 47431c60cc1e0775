"""A producer adapter (conformance/PRODUCER_ADAPTER.md) for RRQ 0.11's own Python producer.

It drives ``rrq.client.RRQClient`` (RRQ's Rust producer behind its FFI), so the conformance
harness can compare the Redis state RRQ writes with rrqkit's producers, and enqueue the jobs of
the RRQ interop cases. RRQ reports every failure as ``ValueError(message)``; the adapter maps
messages to the codes of protocol/PRODUCER.md §6 as well as the message allows (``unknown_error``
when nothing fits). RRQ has no bulk enqueue: ``enqueue_many`` enqueues the items one by one.

    .venv/bin/python conformance/interop/rrq_producer_adapter.py
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pydantic import ValidationError
from rrq.client import RRQClient
from rrq.producer_ffi import RustProducerError, load_producer_settings

CODES = (
    ("job_id already exists", "duplicate_job_id"),
    ("rrq config not found", "config_not_found"),
    ("mutually exclusive", "conflicting_options"),
    ("did not return a job_id", "rate_limited"),
    ("validation error", "invalid_argument"),
    ("is required", "invalid_argument"),
    ("cannot be empty", "invalid_argument"),
    ("cannot be blank", "invalid_argument"),
    ("must be positive", "invalid_argument"),
    ("must be", "invalid_argument"),
    ("invalid", "invalid_argument"),
)


def code_for(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return "invalid_config"
    text = str(error).lower()
    for needle, code in CODES:
        if needle in text:
            return code
    return "unknown_error"


class Adapter:
    def __init__(self) -> None:
        self.client: RRQClient | None = None

    async def use(self, client: RRQClient) -> None:
        old, self.client = self.client, client
        if old is not None:
            await old.close()

    def active(self) -> RRQClient:
        if self.client is None:
            self.client = RRQClient()
        return self.client

    async def op_configure(self, cmd: dict[str, Any]) -> Any:
        try:
            client = RRQClient(config=cmd.get("config") or {})
        except (ValueError, RustProducerError) as exc:
            raise AdapterFailure("invalid_config", str(exc)) from exc
        await self.use(client)
        return None

    async def op_load_config(self, cmd: dict[str, Any]) -> Any:
        try:
            settings = load_producer_settings(cmd.get("path"))
        except RustProducerError as exc:
            message = str(exc)
            code = (
                "config_not_found"
                if "not found" in message.lower()
                else "invalid_config"
            )
            raise AdapterFailure(code, message) from exc
        await self.use(
            RRQClient(config_path=cmd.get("path")) if cmd.get("path") else RRQClient()
        )
        return settings.model_dump()

    @staticmethod
    def options(cmd: dict[str, Any]) -> dict[str, Any]:
        return {"params": cmd.get("params") or {}, **(cmd.get("options") or {})}

    async def op_enqueue(self, cmd: dict[str, Any]) -> Any:
        return await self.active().enqueue(cmd.get("function_name"), self.options(cmd))

    async def op_enqueue_with_rate_limit(self, cmd: dict[str, Any]) -> Any:
        return await self.active().enqueue_with_rate_limit(
            cmd.get("function_name"), self.options(cmd)
        )

    async def op_enqueue_with_debounce(self, cmd: dict[str, Any]) -> Any:
        return await self.active().enqueue_with_debounce(
            cmd.get("function_name"), self.options(cmd)
        )

    async def op_enqueue_many(self, cmd: dict[str, Any]) -> Any:
        return [await self.op_enqueue(item) for item in cmd.get("items") or []]

    async def op_get_job_status(self, cmd: dict[str, Any]) -> Any:
        result = await self.active().get_job_status(cmd["job_id"])
        return None if result is None else result.model_dump(mode="json")

    async def op_wait_for_completion(self, cmd: dict[str, Any]) -> Any:
        kwargs = {"timeout_seconds": cmd.get("timeout_seconds") or 30.0}
        if cmd.get("block_interval_seconds") is not None:
            kwargs["block_interval_seconds"] = cmd["block_interval_seconds"]
        result = await self.active().wait_for_completion(cmd["job_id"], **kwargs)
        return None if result is None else result.model_dump(mode="json")

    async def handle(self, line: str) -> dict[str, Any]:
        try:
            cmd = json.loads(line)
        except ValueError as exc:
            return failure(None, "adapter_error", f"malformed command line: {exc}")
        if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
            return failure(
                None, "adapter_error", "a command is an object with a string 'op'"
            )
        handler = getattr(self, f"op_{cmd['op']}", None)
        if handler is None:
            return failure(cmd.get("id"), "adapter_error", f"unknown op '{cmd['op']}'")
        try:
            return {"id": cmd.get("id"), "ok": True, "result": await handler(cmd)}
        except AdapterFailure as exc:
            return failure(cmd.get("id"), exc.code, exc.message)
        except (ValueError, RustProducerError, TypeError) as exc:
            return failure(cmd.get("id"), code_for(exc), str(exc))


class AdapterFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def failure(command_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": command_id, "ok": False, "error": {"code": code, "message": message}}


async def main() -> None:
    adapter = Adapter()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if line.strip():
            reply = await adapter.handle(line)
            sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    if adapter.client is not None:
        await adapter.client.close()


if __name__ == "__main__":
    asyncio.run(main())
