"""Checkers for notebook 03's exercises (streaming LangChain chains)."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from langchain_openai import ChatOpenAI

from lessons.chain_streaming.chains import build_notes_chain, build_two_step_chain, lookup_notes
from lessons.chain_streaming.chat_model import build_chat_model, close_chat_model
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.sse_parser import parse_sse

QUESTIONS = ("What is machine learning?", "Say hello.")
MESSAGES = ("How do I stream a chain?", "Say hello.")


@asynccontextmanager
async def _model_on_own_mock() -> AsyncIterator[ChatOpenAI]:
    """A ChatOpenAI talking to a mock of the checker's own (any notebook state is left alone)."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders()
    with BackgroundServer(mock.app) as server:
        llm = build_chat_model(base_url=f"{server.url}/v1", api_key="mock-key", max_retries=0)
        try:
            yield llm
        finally:
            await close_chat_model(llm)


async def _collect(result: Any) -> list[Any]:
    # A stub body (`raise NotImplementedError`) makes a coroutine, not an async generator.
    if inspect.isawaitable(result):
        result = await result
    if not hasattr(result, "__aiter__"):
        raise NotYet(f"write an async generator (use `yield`); got {type(result).__name__}")
    return [item async for item in result]


async def check_final_answer(stream_final_answer: Callable[..., Any]) -> None:
    async with _model_on_own_mock() as llm:
        chain = build_two_step_chain(llm)
        for question in QUESTIONS:
            # The mock is deterministic: invoking the chain gives the text to expect.
            expected = await chain.ainvoke({"question": question})
            draft = await build_two_step_chain(llm).first.ainvoke({"question": question})
            pieces = await _collect(stream_final_answer(chain, question))
            if not all(isinstance(p, str) for p in pieces):
                raise NotYet("yield strings: the text of each token")
            if any(p == "" for p in pieces):
                raise NotYet("some pieces are empty (the role and usage chunks): skip them")
            text = "".join(pieces)
            if draft["draft"] in text:
                raise NotYet("the draft's tokens came through too: keep only the tag 'final'")
            if text != expected:
                raise NotYet(f"for {question!r} the pieces join to {text!r}, expected {expected!r}")
            if len(pieces) < 3:
                raise NotYet("the answer came in one piece: yield each token as it arrives")


async def check_progress(relay_with_progress: Callable[..., Any]) -> None:
    async with _model_on_own_mock() as llm:
        chain = build_notes_chain(llm)
        for message in MESSAGES:
            expected = await chain.ainvoke({"message": message})
            items = await _collect(relay_with_progress(chain, message))
            if not all(isinstance(item, str) for item in items):
                raise NotYet("yield SSE text (strings), e.g. sse_event('token', {'text': ...})")
            events = list(parse_sse("".join(items)))
            names = [event.event for event in events]
            if not names or names[-1] != "done" or names.count("done") != 1:
                raise NotYet(f"end with exactly one 'done' event; the events were {names}")
            if names.count("progress") != 1:
                raise NotYet(
                    f"send exactly one 'progress' event (when lookup_notes ends); got "
                    f"{names.count('progress')}"
                )
            if names[0] != "progress" or set(names[1:-1]) != {"token"}:
                raise NotYet(f"expected progress, then tokens, then done; got {names}")
            progress = json.loads(events[0].data)
            want = {"step": "lookup_notes", "output": lookup_notes({"message": message})}
            if progress != want:
                raise NotYet(f"the progress data is {progress!r}, expected {want!r}")
            texts = [json.loads(event.data).get("text") for event in events[1:-1]]
            if "" in texts:
                raise NotYet("some token events are empty: skip empty chunks")
            if "".join(t or "" for t in texts) != expected:
                raise NotYet(f"the tokens join to {''.join(t or '' for t in texts)!r}")
