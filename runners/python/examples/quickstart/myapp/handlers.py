"""Job handlers run by `rrqkit-runner --settings myapp.handlers:registry`."""

from __future__ import annotations

import asyncio
from typing import Any

from rrqkit import ExecutionRequest, Registry, RetryJob, outcomes

registry = Registry()


@registry.handler("send_welcome_email")
async def send_welcome_email(request: ExecutionRequest) -> Any:
    """Pretend to send an email. Asks for a retry in 5 s while the mail server is 'down'."""
    to = request.params.get("to")
    if not isinstance(to, str) or "@" not in to:
        # A returned outcome is used as is: here, a failure with a machine-readable code.
        return outcomes.error(f"invalid address {to!r}", type="ValidationError", code="bad_to")
    if request.params.get("mail_server_down") and request.context.attempt < 2:
        raise RetryJob("mail server unavailable", retry_after_seconds=5)
    await asyncio.sleep(0.05)  # the real work would go here
    return {"sent_to": to, "attempt": request.context.attempt}


@registry.handler("sum_numbers")
async def sum_numbers(request: ExecutionRequest) -> Any:
    """Any returned value is the job's result; a raised exception fails the attempt."""
    numbers = request.params.get("numbers", [])
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        raise ValueError("numbers must be a list of numbers")
    return {"total": sum(numbers), "count": len(numbers)}
