"""Solutions for notebook 05 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402, F811
# %% exercise: error_contract  check: lessons.toolkit.exercise_checks.nb05_errors_and_cleanup:check_error_contract
from collections.abc import AsyncIterator

from lessons.relay_core import classify_during_stream, sse_data


async def contract_events(pieces: AsyncIterator[str], request_id: str) -> AsyncIterator[str]:
    """/chat/stream events for each text piece, then exactly one terminal event: done, or, if
    `pieces` raises, one error event with a fixed message and code (never the exception's text)."""
    ### BEGIN SOLUTION
    try:
        async for piece in pieces:
            yield sse_data({"token": piece, "done": False})
    except Exception as exc:
        # The exception's text goes to the server log (classify logs it), not to the client.
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
        return
    yield sse_data({"token": "", "done": True})
    ### END SOLUTION


# %% end

# %% exercise: stall_timeout  check: lessons.toolkit.exercise_checks.nb05_errors_and_cleanup:check_stall_timeout
import asyncio
from collections.abc import AsyncIterable, AsyncIterator


async def with_idle_timeout(source: AsyncIterable[str], idle_s: float) -> AsyncIterator[str]:
    """Yield `source`'s items; raise TimeoutError when the next one takes longer than `idle_s`
    (however long the whole stream takes), and close `source` however this ends."""
    ### BEGIN SOLUTION
    items = aiter(source)
    try:
        while True:
            try:
                # The deadline covers one wait, and no `yield` happens inside it.
                async with asyncio.timeout(idle_s):
                    item = await anext(items)
            except StopAsyncIteration:
                return
            yield item
    finally:
        await items.aclose()
    ### END SOLUTION


# %% end

# %% exercise: cancels_upstream  check: lessons.toolkit.exercise_checks.nb05_errors_and_cleanup:check_cancels_upstream
from typing import Any

import httpx


def upstream_was_cancelled(url: str, mock: Any) -> bool:
    """POST {"message": "What is machine learning?"} to `url` + "/chat/stream", read three token
    events, leave, and return True only if the mock stopped generating because the relay left."""
    ### BEGIN SOLUTION
    tokens = 0
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{url}/chat/stream", json={"message": "What is machine learning?"}
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data:") and '"done":false' in line.replace(" ", ""):
                tokens += 1
                if tokens == 3:
                    break
    # The mock's own record decides, once it has stopped streaming to this request.
    seen = mock.wait_until_finished(mock.last_request(), timeout=5)
    return seen.outcome == "client_disconnected" and seen.tokens_sent < seen.tokens_planned
    ### END SOLUTION


# %% end
