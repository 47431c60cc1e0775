"""What the producer's read calls return: job status, progress, cancel results and output
stream entries (decoded from the job hash and streams the orchestrator writes)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CANCEL_REFUSALS",
    "JOB_STATUSES",
    "TERMINAL_STATUSES",
    "CancelResult",
    "JobProgress",
    "JobResult",
]

JOB_STATUSES: Final = frozenset(
    {"PENDING", "ACTIVE", "COMPLETED", "FAILED", "RETRYING", "CANCELLED"}
)
TERMINAL_STATUSES: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What :meth:`Producer.cancel` did.

    ``cancelled`` is True when this call cancelled the job (waiting in its queue, or running on
    an rrqkit orchestrator, which is then told to stop the handler). ``status`` is the job's
    status after the call: ``"CANCELLED"`` when cancelled, its unchanged status when it could
    not be cancelled, None when there is no such job. ``reason`` says why not (one of
    :data:`CANCEL_REFUSALS`' names; None when cancelled).
    """

    cancelled: bool
    status: str | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The adapter's reply form: ``reason`` only when there is one."""
        out: dict[str, Any] = {"cancelled": self.cancelled, "status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


#: job-cancel-2.lua's refusal codes and their names, the same in every producer and the data
#: API (src/control/cancel.ts): not_found (no such job), not_waiting (its status allows no
#: cancel), no_queue (a waiting job whose hash names no queue), not_in_queue (a waiting job
#: missing from its queue: being claimed right now), running_unfenced (running on RRQ's own
#: orchestrator, which does not fence its writes: its late success would overwrite the cancel).
CANCEL_REFUSALS: Final = {
    0: "not_waiting",
    -1: "not_found",
    -2: "no_queue",
    -3: "not_in_queue",
    -4: "running_unfenced",
}


def field_int(text: str | None) -> int:
    """A hash field or stream value as an int (0 when missing or not an integer)."""
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def output_entry(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """One entry of an output stream (``rrq:output:<job>:<run>``) as :meth:`Producer.tail`
    yields it."""
    kind = fields.get("k")
    if kind == "truncated":
        return {"id": entry_id, "kind": "truncated", "dropped": field_int(fields.get("dropped"))}
    if kind == "closed":
        return {"id": entry_id, "kind": "closed", "status": fields.get("status", "")}
    shown = "err" if kind == "err" else "log" if kind == "log" else "out"
    return {"id": entry_id, "kind": shown, "data": fields.get("d", "")}


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job's latest progress (live jobs, issue 23), as its handler last reported it."""

    #: 0..1, or None when only a message was reported
    progress: float | None
    message: str | None
    #: any JSON value the handler attached, or None
    detail: Any
    #: when the orchestrator stored it (RFC 3339)
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "progress": self.progress,
            "message": self.message,
            "detail": self.detail,
            "at": self.at,
        }


def progress_of(data: Mapping[str, str]) -> JobProgress | None:
    """The progress fields of a job hash (as the TS producer reads them), or None."""
    at = data.get("progress_at")
    if not at:
        return None
    raw = data.get("progress")
    try:
        value: float | None = float(raw) if raw else None
    except ValueError:
        value = None
    if value is not None and not math.isfinite(value):
        value = None
    detail: Any = None
    if data.get("progress_detail"):
        try:
            detail = json.loads(data["progress_detail"])
        except ValueError:
            detail = data["progress_detail"]
    return JobProgress(value, data.get("progress_message") or None, detail, at)


@dataclass(slots=True)
class JobResult:
    """A job's state as seen by a producer."""

    status: str
    result: Any = None
    last_error: str | None = None
    #: rrqkit live jobs: the handler's latest progress; None when it reported none
    progress: JobProgress | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"status": self.status, "result": self.result, "last_error": self.last_error}
        # only when present, so the snapshots of jobs without progress are unchanged
        if self.progress is not None:
            out["progress"] = self.progress.to_dict()
        return out
