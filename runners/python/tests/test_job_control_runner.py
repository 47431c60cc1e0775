"""Job control on the runner side (issue 20): NonRetryableError, SnoozeJob, the snooze outcome
field, and the conformance handlers fail_permanently and snooze."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from rrqkit import (
    ExecutionOutcome,
    ExecutionRequest,
    NonRetryableError,
    Registry,
    RunnerRuntime,
    SnoozeJob,
    outcomes,
)
from rrqkit.codec import FrameDecoder, frame
from rrqkit.models import ExecutionContext, OutcomeError

from helpers import FrameClient, new_id

# -- units ----------------------------------------------------------------------------------


def test_snooze_job_validates_seconds() -> None:
    assert SnoozeJob(30).seconds == 30
    assert SnoozeJob(0).seconds == 0
    assert SnoozeJob(0.25).seconds == 0.25
    for bad in (-1, -0.001, math.nan, math.inf, -math.inf, True, "3", None):
        with pytest.raises(ValueError, match="snooze seconds must be a finite number >= 0"):
            SnoozeJob(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            outcomes.snooze(bad)  # type: ignore[arg-type]


def test_snooze_outcome_wire_form() -> None:
    out = outcomes.snooze(30)
    wire = out.to_wire()
    assert wire == {
        "job_id": None,
        "request_id": None,
        "status": "retry",
        "result": None,
        "error": {"message": "Job snoozed", "type": None, "code": None, "details": None},
        "retry_after_seconds": 30,
        "snooze": True,
    }
    assert list(wire)[-1] == "snooze"  # after retry_after_seconds, as in the schema


def test_snooze_integral_seconds_written_as_integers() -> None:
    assert frame("response", outcomes.snooze(30.0), "json").endswith(
        b'"retry_after_seconds":30,"snooze":true}}'
    )
    assert frame("response", outcomes.snooze(0.5), "json").endswith(
        b'"retry_after_seconds":0.5,"snooze":true}}'
    )


def test_snooze_written_only_when_true() -> None:
    for out in (
        outcomes.retry("later", after_seconds=3),
        outcomes.success({"a": 1}),
        outcomes.error("boom"),
        ExecutionOutcome(status="retry", snooze=False),
    ):
        assert "snooze" not in out.to_wire()


def test_snooze_decoding() -> None:
    base = {
        "job_id": "j",
        "request_id": "r",
        "status": "retry",
        "result": None,
        "error": None,
        "retry_after_seconds": 1,
    }
    assert ExecutionOutcome.from_wire(base).snooze is False
    assert ExecutionOutcome.from_wire({**base, "snooze": None}).snooze is False
    assert ExecutionOutcome.from_wire({**base, "snooze": False}).snooze is False
    assert ExecutionOutcome.from_wire({**base, "snooze": True}).snooze is True
    from rrqkit.errors import DecodeError

    with pytest.raises(DecodeError) as caught:
        ExecutionOutcome.from_wire({**base, "snooze": "yes"})
    assert caught.value.code == "invalid_frame"
    # Round trip through a frame, both encodings.
    for encoding in ("json", "msgpack"):
        data = frame("response", ExecutionOutcome.from_wire({**base, "snooze": True}), encoding)
        (item,) = FrameDecoder(encoding).feed(data)
        assert item.raw["payload"]["snooze"] is True
        assert item.payload.snooze is True


def test_non_retryable_outcome_helper() -> None:
    out = outcomes.non_retryable("bad input")
    assert out.status == "error"
    assert out.error == OutcomeError(message="bad input", type="non_retryable")
    assert "snooze" not in out.to_wire()


def test_returned_snooze_outcome_without_error_gets_snooze_message() -> None:
    out = outcomes.with_default_error(
        ExecutionOutcome(status="retry", retry_after_seconds=2, snooze=True)
    )
    assert out.error == OutcomeError(message="Job snoozed")


# -- in-process runtime: raised exceptions become outcomes ---------------------------------


class _Boom(NonRetryableError):
    pass


async def _invoke(handler: Any) -> ExecutionOutcome:
    registry = Registry()
    registry.register("h", handler)
    runtime = RunnerRuntime(registry, hello=False)
    request = ExecutionRequest(
        job_id="j1",
        request_id="r1",
        function_name="h",
        params={},
        context=ExecutionContext(
            job_id="j1",
            attempt=1,
            enqueue_time="2026-01-01T00:00:00Z",
            queue_name="rrq:queue:default",
        ),
    )
    return await runtime._invoke(handler, request)


def test_raised_exceptions_in_process() -> None:
    async def permanent(_request: ExecutionRequest) -> Any:
        raise NonRetryableError("card declined")

    async def subclass(_request: ExecutionRequest) -> Any:
        raise _Boom("sub")

    def sync_snooze(_request: ExecutionRequest) -> Any:
        raise SnoozeJob(1.5)

    out = asyncio.run(_invoke(permanent))
    assert out.status == "error"
    assert out.error is not None
    assert (out.error.message, out.error.type) == ("card declined", "non_retryable")
    assert out.error.traceback is not None
    assert out.error.traceback.endswith("NonRetryableError: card declined\n")
    out = asyncio.run(_invoke(subclass))
    assert out.error is not None and out.error.type == "non_retryable"
    assert out.error.traceback is not None and out.error.traceback.endswith("_Boom: sub\n")
    out = asyncio.run(_invoke(sync_snooze))
    assert (out.status, out.retry_after_seconds, out.snooze) == ("retry", 1.5, True)
    assert out.error == OutcomeError(message="Job snoozed")


# -- the conformance runner over every transport × encoding ---------------------------------


def test_fail_permanently(client: FrameClient) -> None:
    rid = client.send_request("fail_permanently", {"message": "card declined"})
    out = client.response(rid)
    assert out["status"] == "error"
    assert out["error"]["message"] == "card declined"
    assert out["error"]["type"] == "non_retryable"
    traceback = out["error"]["traceback"]
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert traceback.endswith("NonRetryableError: card declined\n")
    assert "snooze" not in out
    rid = client.send_request("fail_permanently")
    assert client.response(rid)["error"]["message"] == "boom"


def test_snooze_handler(client: FrameClient) -> None:
    job_id = new_id("snz")
    for _ in range(2):
        rid = client.send_request("snooze", {"seconds": 0.5, "times": 2}, job_id=job_id)
        out = client.response(rid)
        assert out == {
            "job_id": job_id,
            "request_id": rid,
            "status": "retry",
            "result": None,
            "error": {"message": "Job snoozed", "type": None, "code": None, "details": None},
            "retry_after_seconds": 0.5,
            "snooze": True,
        }
        assert list(out)[-1] == "snooze"
    rid = client.send_request("snooze", {"seconds": 0.5, "times": 2}, job_id=job_id, attempt=1)
    out = client.response(rid)
    assert out["status"] == "success"
    assert out["result"] == {"snoozed": 2, "attempt": 1}
    assert "snooze" not in out
    # Defaults: seconds 0.1, times 1; the counter is per job id.
    other = new_id("snz")
    out = client.response(client.send_request("snooze", job_id=other))
    assert (out["status"], out["retry_after_seconds"], out["snooze"]) == ("retry", 0.1, True)
    out = client.response(client.send_request("snooze", job_id=other, attempt=1))
    assert out["result"] == {"snoozed": 1, "attempt": 1}
