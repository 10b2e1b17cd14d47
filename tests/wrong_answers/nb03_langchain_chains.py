"""Wrong answers that notebook 03's checkers must reject."""

_ITEMS_HEAD = """
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core import Finish, StreamItem, Token, Usage


async def two_step_items(events: AsyncIterable[dict[str, Any]]) -> AsyncIterator[StreamItem]:
"""

_STATS_HEAD = """
from collections.abc import AsyncIterator

from lessons.chain_streaming.chains import answer_stats


"""

# Usage per call, as /chain/events does for its one call: the core keeps only the last one.
USAGE_PER_CALL = (
    _ITEMS_HEAD
    + """
    reasons = {}
    async for event in events:
        call = "final" if "final" in event["tags"] else "draft"
        if event["event"] == "on_chat_model_stream" and call == "final":
            if event["data"]["chunk"].text:
                yield Token(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            usage = event["data"]["output"].usage_metadata
            yield Usage(usage["input_tokens"], usage["output_tokens"])
            reasons[call] = event["data"]["output"].response_metadata.get("finish_reason")
    if reasons.get("draft") and reasons.get("final"):
        yield Finish(reasons["final"])
"""
)

# Each call treated as /chain/events treats its one call (the notebook shows this attempt).
EACH_CALL_AS_ONE = (
    _ITEMS_HEAD
    + """
    async for event in events:
        if event["event"] == "on_chat_model_stream" and "final" in event["tags"]:
            if event["data"]["chunk"].text:
                yield Token(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            message = event["data"]["output"]
            usage = message.usage_metadata
            yield Usage(usage["input_tokens"], usage["output_tokens"])
            yield Finish(message.response_metadata["finish_reason"])
"""
)

WRONG_ANSWERS = {
    "two_step_items": [
        EACH_CALL_AS_ONE,
        # Both model calls' tokens: the draft leaks into the answer.
        _ITEMS_HEAD
        + """
    async for event in events:
        if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            yield Token(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            usage = event["data"]["output"].usage_metadata
            yield Usage(usage["input_tokens"], usage["output_tokens"])
    yield Finish("stop")
""",
        USAGE_PER_CALL,
        # Usage summed, but a Finish for every call: the draft's "stop" ends a cut rewrite.
        _ITEMS_HEAD
        + """
    total_in = total_out = 0
    async for event in events:
        if event["event"] == "on_chat_model_stream" and "final" in event["tags"]:
            if event["data"]["chunk"].text:
                yield Token(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            message = event["data"]["output"]
            if message.usage_metadata:
                total_in += message.usage_metadata["input_tokens"]
                total_out += message.usage_metadata["output_tokens"]
            if message.response_metadata.get("finish_reason"):
                yield Finish(message.response_metadata["finish_reason"])
    yield Usage(total_in, total_out)
""",
        # Only the rewrite's finish reason: a draft cut short still ends with `done`.
        _ITEMS_HEAD
        + """
    total_in = total_out = 0
    reason = None
    async for event in events:
        if event["event"] == "on_chat_model_stream" and "final" in event["tags"]:
            if event["data"]["chunk"].text:
                yield Token(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            message = event["data"]["output"]
            if message.usage_metadata:
                total_in += message.usage_metadata["input_tokens"]
                total_out += message.usage_metadata["output_tokens"]
            if "final" in event["tags"]:
                reason = message.response_metadata.get("finish_reason")
    yield Usage(total_in, total_out)
    if reason:
        yield Finish(reason)
""",
        # A Finish whatever happened: every cut reply reads as complete.
        _ITEMS_HEAD
        + """
    total_in = total_out = 0
    async for event in events:
        if event["event"] == "on_chat_model_stream" and "final" in event["tags"]:
            if event["data"]["chunk"].text:
                yield Token(event["data"]["chunk"].text)
        elif event["event"] == "on_chat_model_end":
            usage = event["data"]["output"].usage_metadata or {}
            total_in += usage.get("input_tokens", 0)
            total_out += usage.get("output_tokens", 0)
    yield Usage(total_in, total_out)
    yield Finish("stop")
""",
    ],
    "running_stats": [
        # The stats of each piece on its own, not of the answer so far.
        _STATS_HEAD
        + """
async def running_stats(pieces: AsyncIterator[str]) -> AsyncIterator[dict[str, int]]:
    async for piece in pieces:
        yield answer_stats(piece)
""",
        # Streams nothing: the whole answer first, then one output, as the plain step did.
        _STATS_HEAD
        + """
async def running_stats(pieces: AsyncIterator[str]) -> AsyncIterator[dict[str, int]]:
    answer = ""
    async for piece in pieces:
        answer += piece
    yield answer_stats(answer)
""",
        # Not a generator at all: LangChain cannot stream through a plain function's return.
        _STATS_HEAD
        + """
async def running_stats(pieces: AsyncIterator[str]) -> AsyncIterator[dict[str, int]]:
    return answer_stats("".join([piece async for piece in pieces]))
""",
    ],
}
