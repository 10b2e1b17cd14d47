"""Wrong answers that notebook 03's checkers must reject."""
# ruff: noqa: E501  (the answers are notebook cells, kept as a learner would write them)

_FINAL_HEAD = """
from collections.abc import AsyncIterator

from langchain_core.runnables import Runnable


async def stream_final_answer(chain: Runnable, question: str) -> AsyncIterator[str]:
"""

_PROGRESS_HEAD = """
from collections.abc import AsyncIterator

from langchain_core.runnables import Runnable

from lessons.relay_core import sse_event


async def relay_with_progress(chain: Runnable, message: str) -> AsyncIterator[str]:
"""

WRONG_ANSWERS = {
    "final_answer": [
        # Both model calls' tokens: the draft leaks into the answer.
        _FINAL_HEAD
        + """
    async for event in chain.astream_events({"question": question}, version="v2"):
        if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            yield event["data"]["chunk"].text
""",
        # The draft's tokens instead of the final answer's.
        _FINAL_HEAD
        + """
    events = chain.astream_events({"question": question}, version="v2", include_tags=["draft"])
    async for event in events:
        if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            yield event["data"]["chunk"].text
""",
        # Empty role and usage chunks passed on.
        _FINAL_HEAD
        + """
    events = chain.astream_events({"question": question}, version="v2", include_tags=["final"])
    async for event in events:
        if event["event"] == "on_chat_model_stream":
            yield event["data"]["chunk"].text
""",
        # The whole answer at once: nothing is streamed.
        _FINAL_HEAD
        + """
    yield await chain.ainvoke({"question": question})
""",
    ],
    "progress": [
        # Every step's end is reported (the prompt, the parser, the chain...).
        _PROGRESS_HEAD
        + """
    async for event in chain.astream_events({"message": message}, version="v2"):
        if event["event"] == "on_chain_end":
            yield sse_event("progress", {"step": "lookup_notes", "output": event["data"]["output"]})
        elif event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            yield sse_event("token", {"text": event["data"]["chunk"].text})
    yield sse_event("done", {})
""",
        # Progress when the step starts: it has no output yet.
        _PROGRESS_HEAD
        + """
    async for event in chain.astream_events({"message": message}, version="v2"):
        if event["event"] == "on_chain_start" and event["name"] == "lookup_notes":
            yield sse_event("progress", {"step": "lookup_notes", "output": event["data"].get("input")})
        elif event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            yield sse_event("token", {"text": event["data"]["chunk"].text})
    yield sse_event("done", {})
""",
        # No done event at the end.
        _PROGRESS_HEAD
        + """
    async for event in chain.astream_events({"message": message}, version="v2"):
        if event["event"] == "on_chain_end" and event["name"] == "lookup_notes":
            yield sse_event("progress", {"step": "lookup_notes", "output": event["data"]["output"]})
        elif event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            yield sse_event("token", {"text": event["data"]["chunk"].text})
""",
        # Tokens taken from the chain's own stream as well: every piece arrives twice.
        _PROGRESS_HEAD
        + """
    async for event in chain.astream_events({"message": message}, version="v2"):
        if event["event"] == "on_chain_end" and event["name"] == "lookup_notes":
            yield sse_event("progress", {"step": "lookup_notes", "output": event["data"]["output"]})
        elif event["event"] in ("on_chat_model_stream", "on_parser_stream"):
            chunk = event["data"]["chunk"]
            text = chunk if isinstance(chunk, str) else chunk.text
            if text:
                yield sse_event("token", {"text": text})
    yield sse_event("done", {})
""",
    ],
}
