"""Checkers for notebook 02's exercises: adapters against the mock, a concurrency measurement."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from anthropic import AsyncAnthropic
from fastapi import FastAPI
from openai import AsyncOpenAI

from lessons.relay_core import ChatRequest, new_request_id, sse_data, streaming_response
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.concurrency import measure_streams, private_mock
from lessons.toolkit.exercises import NotYet
from lessons.two_providers.adapters import (
    Finish,
    Token,
    Usage,
    openai_responses_events,
)

PROMPTS = ("Say hello.", "Explain streaming in one paragraph.")


async def _collect(adapter: Callable[[Any], Any], stream: Any) -> list[Any]:
    produced = adapter(stream)
    if inspect.iscoroutine(produced):
        await produced  # an untouched stub raises NotImplementedError here
    if not inspect.isasyncgen(produced):
        await stream.close()
        raise NotYet(
            "the adapter must be an async generator: `async def` with `yield` inside, "
            f"got {type(produced).__name__}"
        )
    try:
        return [event async for event in produced]
    finally:
        await stream.close()


def _kept(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, Token | Usage | Finish)]


async def check_responses_adapter(adapt_responses: Callable[[Any], Any]) -> None:
    """Compare the learner's adapter with the lesson's on real Responses streams from a mock."""
    with private_mock():
        async with AsyncOpenAI(max_retries=0) as client:
            cases = [(prompt, None) for prompt in PROMPTS] + [(PROMPTS[1], 16)]
            for prompt, limit in cases:
                extra = {"max_output_tokens": limit} if limit else {}
                options = {"model": "gpt-4o-mini", "input": prompt, "stream": True, **extra}
                expected = await _collect(
                    openai_responses_events, await client.responses.create(**options)
                )
                got = _kept(
                    await _collect(adapt_responses, await client.responses.create(**options))
                )
                what = f"for {prompt!r}" + (f" with max_output_tokens={limit}" if limit else "")
                want_text = "".join(e.text for e in expected if isinstance(e, Token))
                got_text = "".join(e.text for e in got if isinstance(e, Token))
                if got_text != want_text:
                    raise NotYet(f"{what} the tokens join to {got_text!r}, expected {want_text!r}")
                if got[-2:] != expected[-2:]:
                    raise NotYet(
                        f"{what} the stream should end with {expected[-2:]}, got {got[-2:]}"
                    )
                if got != expected:
                    raise NotYet(f"{what} expected exactly {len(expected)} events, got {len(got)}")


def _ns(**kwargs: Any) -> SimpleNamespace:
    return SimpleNamespace(**kwargs)


async def _events(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _two_deltas_stream() -> list[Any]:
    """A stream with two message_delta events, as long replies and tool use produce."""
    return [
        _ns(type="message_start", message=_ns(usage=_ns(input_tokens=21, output_tokens=1))),
        _ns(type="ping"),
        _ns(type="content_block_delta", index=0, delta=_ns(type="text_delta", text="Hi")),
        _ns(
            type="message_delta",
            delta=_ns(stop_reason=None),
            usage=_ns(output_tokens=30, input_tokens=None),
        ),
        _ns(
            type="message_delta",
            delta=_ns(stop_reason="end_turn"),
            usage=_ns(output_tokens=57, input_tokens=None),
        ),
        _ns(type="message_stop"),
    ]


async def check_anthropic_usage(anthropic_usage: Callable[[Any], Any]) -> None:
    """Real Anthropic streams from a mock, then a hand-made one with two cumulative deltas."""
    with private_mock() as mock:
        async with AsyncAnthropic(max_retries=0) as client:
            for prompt in PROMPTS:
                stream = await client.messages.create(
                    model="claude-haiku-4-5-20251001",
                    max_tokens=1024,
                    messages=[{"role": "user", "content": prompt}],
                    stream=True,
                )
                try:
                    usage = await anthropic_usage(stream)
                finally:
                    await stream.close()
                observed = mock.last_request()
                expected = Usage(observed.input_tokens, observed.tokens_sent)
                if usage != expected:
                    raise NotYet(f"for {prompt!r} expected {expected}, got {usage}")
    usage = await anthropic_usage(_events(_two_deltas_stream()))
    if usage != Usage(21, 57):
        raise NotYet(
            "with two message_delta events (output_tokens 30, then 57) and 21 input tokens, "
            f"expected Usage(input_tokens=21, output_tokens=57), got {usage}: message_delta "
            "totals are cumulative"
        )


def _app_around(replier_class: type) -> FastAPI:
    """The app of the exercise: a lifespan that creates one Replier, and /chat/stream."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.replier = replier_class()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/chat/stream")
    async def chat_stream(body: ChatRequest) -> Any:
        async def events() -> AsyncIterator[str]:
            async for token in app.state.replier.tokens(body.message):
                yield sse_data({"token": token, "done": False})
            yield sse_data({"token": "", "done": True})

        return streaming_response(events(), request_id=new_request_id())

    return app


async def check_unblock_the_loop(replier_class: type) -> None:
    """Serve 10 concurrent streams through the learner's Replier; they must overlap and stream."""
    with private_mock(ttft_ms=50, token_interval_ms=25) as mock:
        replier_class()  # a stub raises NotImplementedError here: "not attempted"
        expected = "Hello! How can I help you today?"
        with BackgroundServer(_app_around(replier_class)) as server:
            run = await measure_streams(
                server.url, "/chat/stream", {"message": "Say hello."}, 10, read_timeout_s=20
            )
        bad = [s for s in run.streams if s.status != 200 or s.text != expected]
        if bad:
            raise NotYet(
                f"{len(bad)} of 10 streams did not deliver {expected!r} "
                f"(one got status {bad[0].status} and text {bad[0].text!r})"
            )
        if run.served_one_after_another or run.most_waited_for_a_whole_reply:
            raise NotYet(
                "the 10 streams were served one after another (at most "
                f"{run.peak_overlap} were mid-reply at once): something still blocks the event "
                "loop; use AsyncOpenAI, `await` the create call and `async for` over the stream"
            )
        # Streaming, not buffering: each reply reaches the client over about as long as the
        # mock took to send it, not in one burst at the end.
        sent = sorted(r.finished_at - r.first_token_at for r in mock.requests if r.first_token_at)
        received = sorted((s.last_token_ms - s.ttft_ms) / 1000 for s in run.streams)  # type: ignore[operator]
        if received[len(received) // 2] < 0.5 * sent[len(sent) // 2]:
            raise NotYet(
                "the replies arrived in one burst each: yield every piece as it arrives instead "
                "of collecting the whole reply first"
            )
