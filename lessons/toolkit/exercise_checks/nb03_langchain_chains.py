"""Checkers for notebook 03's exercises (streaming LangChain chains)."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableGenerator
from langchain_openai import ChatOpenAI

from lessons.chain_streaming.chains import answer_stats, build_answer_chain, build_two_step_chain
from lessons.chain_streaming.chat_model import build_chat_model, close_chat_model
from lessons.mock_providers import Fault, MockProviders
from lessons.relay_core import Finish, Token, Usage
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet

QUESTIONS = ("What is machine learning?", "Say hello.")


@asynccontextmanager
async def _model_on_own_mock(**timing: float) -> AsyncIterator[tuple[ChatOpenAI, Any]]:
    """A ChatOpenAI talking to a mock of the checker's own (any notebook state is left alone)."""
    mock = MockProviders(**timing)
    with BackgroundServer(mock.app) as server:
        llm = build_chat_model(base_url=f"{server.url}/v1", api_key="mock-key", max_retries=0)
        try:
            yield llm, mock
        finally:
            await close_chat_model(llm)


async def _collect(result: Any) -> list[Any]:
    # A stub body (`raise NotImplementedError`) makes a coroutine, not an async generator.
    if inspect.isawaitable(result):
        result = await result
    if not hasattr(result, "__aiter__"):
        raise NotYet(f"write an async generator (use `yield`); got {type(result).__name__}")
    return [item async for item in result]


# --- exercise 1: the two-step chain as the core's items ------------------------------------


async def _items(two_step_items: Callable[..., Any], llm: ChatOpenAI, question: str) -> list[Any]:
    events = build_two_step_chain(llm).astream_events({"question": question}, version="v2")
    items = await _collect(two_step_items(events))
    strange = [item for item in items if not isinstance(item, Token | Usage | Finish)]
    if strange:
        raise NotYet(f"yield Token, Usage and Finish items only; got {strange[0]!r}")
    return items


def _finishes(items: list[Any]) -> list[Finish]:
    return [item for item in items if isinstance(item, Finish)]


async def check_two_step_items(two_step_items: Callable[..., Any]) -> None:
    async with _model_on_own_mock() as (llm, mock):
        for question in QUESTIONS:
            mock.reset()
            items = await _items(two_step_items, llm, question)
            draft, final = mock.requests[-2:]
            pieces = [item.text for item in items if isinstance(item, Token)]
            if "" in pieces:
                raise NotYet("some Token items are empty (the role and usage chunks): skip them")
            text = "".join(pieces)
            if draft.reply_text in text:
                raise NotYet("the draft's tokens came through too: keep only the tag 'final'")
            if text != final.reply_text:
                raise NotYet(f"for {question!r} the tokens join to {text!r}, not the rewrite")
            if len(pieces) < 3:
                raise NotYet("the answer came in one piece: yield each token as it arrives")
            usages = [item for item in items if isinstance(item, Usage)]
            billed = Usage(
                draft.input_tokens + final.input_tokens, draft.tokens_sent + final.tokens_sent
            )
            if not usages:
                raise NotYet("no Usage: the core would have to estimate the bill")
            if usages[-1] != billed:
                raise NotYet(
                    f"the core keeps the last Usage it is given, here {usages[-1]}; the provider "
                    f"billed {billed} for the two calls together"
                )
            if _finishes(items) != [Finish("stop")] or not isinstance(items[-1], Finish):
                raise NotYet(
                    f"end with one Finish, the rewrite's reason; got {_finishes(items)} "
                    "(the core sends `done` if it got any Finish, with the last one's reason)"
                )
        # A rewrite cut short ends without its finish reason: the reply is not complete.
        for cut, what in (("Draft answer:", "rewrite"), (QUESTIONS[0], "draft")):
            mock.reset()
            mock.script(fault=Fault.end_early(after_tokens=3), prompt_contains=cut, times=1)
            items = await _items(two_step_items, llm, QUESTIONS[0])
            if _finishes(items):
                raise NotYet(
                    f"the {what} was cut short (its stream ended without a finish reason), yet "
                    f"you yielded {_finishes(items)}: the client would get `done` for an "
                    "incomplete answer"
                )


# --- exercise 2: a step that streams -------------------------------------------------------


def _prefix_stats(answer: str) -> list[dict[str, int]]:
    return [answer_stats(answer[:end]) for end in range(len(answer) + 1)]


async def check_running_stats(running_stats: Callable[..., Any]) -> None:
    if not inspect.isasyncgenfunction(running_stats):

        async def no_pieces() -> AsyncIterator[str]:
            return
            yield  # an async generator with nothing in it

        await _collect(running_stats(no_pieces()))  # a stub raises NotImplementedError here
    try:
        step = RunnableGenerator(running_stats)
    except TypeError as exc:
        raise NotYet("write an async generator function: `async def`, with `yield`") from exc
    async with _model_on_own_mock(token_interval_ms=10) as (llm, mock):
        for question in QUESTIONS:
            mock.reset()
            chain = build_answer_chain(llm) | step
            arrivals: list[tuple[float, Any]] = []
            async for output in chain.astream({"message": question}):
                arrivals.append((time.monotonic(), output))
            observed = mock.wait_until_finished(mock.last_request())
            answer = observed.reply_text
            outputs = [output for _, output in arrivals]
            if not outputs:
                raise NotYet("the step yielded nothing")
            if outputs[-1] != answer_stats(answer):
                raise NotYet(
                    f"the last output is {outputs[-1]!r}; answer_stats of the whole answer is "
                    f"{answer_stats(answer)!r}: count over the answer so far, not one piece"
                )
            possible = _prefix_stats(answer)
            wrong = next((output for output in outputs if output not in possible), None)
            if wrong is not None:
                raise NotYet(f"{wrong!r} is not answer_stats of any beginning of the answer")
            if len({str(output) for output in outputs}) < 3:
                raise NotYet("only one or two different outputs: yield after every piece")
            first_real = next(at for at, output in arrivals if output.get("characters"))
            assert observed.finished_at is not None
            if first_real >= observed.finished_at:
                raise NotYet(
                    "the first stats came after the model had finished: the step does not "
                    "stream (yield inside the loop over the pieces)"
                )
