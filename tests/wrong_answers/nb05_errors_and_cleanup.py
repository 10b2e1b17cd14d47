"""Wrong answers to notebook 05's exercises: each must be reported "not yet"."""

WRONG_ANSWERS = {
    "error_contract": [
        # Leaks the exception text (the original lesson's str(e)).
        """
import json
async def contract_events(pieces, request_id):
    try:
        async for piece in pieces:
            yield "data: " + json.dumps({"token": piece, "done": False}) + "\\n\\n"
    except Exception as e:
        yield "data: " + json.dumps({"error": str(e), "done": True}) + "\\n\\n"
        return
    yield "data: " + json.dumps({"token": "", "done": True}) + "\\n\\n"
""",
        # Sends done after the error: two terminal events.
        """
from lessons.relay_core import classify_during_stream, sse_data
async def contract_events(pieces, request_id):
    try:
        async for piece in pieces:
            yield sse_data({"token": piece, "done": False})
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_data({"error": error.message, "code": error.code,
                        "request_id": request_id, "done": True})
    yield sse_data({"token": "", "done": True})
""",
        # Swallows the failure: no terminal event at all.
        """
from lessons.relay_core import sse_data
async def contract_events(pieces, request_id):
    try:
        async for piece in pieces:
            yield sse_data({"token": piece, "done": False})
        yield sse_data({"token": "", "done": True})
    except Exception:
        pass
""",
        # One fixed code for every failure.
        """
from lessons.relay_core import sse_data
async def contract_events(pieces, request_id):
    try:
        async for piece in pieces:
            yield sse_data({"token": piece, "done": False})
    except Exception:
        yield sse_data({"error": "Something went wrong.", "code": "error",
                        "request_id": request_id, "done": True})
        return
    yield sse_data({"token": "", "done": True})
""",
    ],
    "stall_timeout": [
        # A deadline on the whole stream, not on each gap.
        """
import asyncio
async def with_idle_timeout(source, idle_s):
    async with asyncio.timeout(idle_s):
        async for item in source:
            yield item
""",
        # No deadline at all.
        """
async def with_idle_timeout(source, idle_s):
    async for item in source:
        yield item
""",
        # Notices the stall but ends silently.
        """
import asyncio
async def with_idle_timeout(source, idle_s):
    items = aiter(source)
    while True:
        try:
            async with asyncio.timeout(idle_s):
                item = await anext(items)
        except (StopAsyncIteration, TimeoutError):
            return
        yield item
""",
    ],
    "cancels_upstream": [
        # Trusts the client side: the stream closed, so "cancelled".
        """
import httpx
def upstream_was_cancelled(url, mock):
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", url + "/chat/stream",
                           json={"message": "What is machine learning?"}) as response:
            for n, line in enumerate(response.iter_lines()):
                if n > 6:
                    break
    return True
""",
        # Reads the mock before it has finished: "in_progress" looks like "not completed".
        """
import httpx
def upstream_was_cancelled(url, mock):
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", url + "/chat/stream",
                           json={"message": "What is machine learning?"}) as response:
            for n, line in enumerate(response.iter_lines()):
                if n > 6:
                    break
    return mock.last_request().outcome != "completed"
""",
    ],
}
