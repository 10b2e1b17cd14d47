"""Checkers for notebook 01's exercises."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse
from openai.types.chat import ChatCompletionChunk

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.sse_parser import SSEDecoder, SSEEvent, parse_sse


def _events(text: str) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [e for e in decoder.feed(text) if isinstance(e, SSEEvent)]
    decoder.close()
    if decoder.incomplete_tail is not None:
        raise NotYet(
            f"the text does not end with the blank line that ends an event: {text[-40:]!r}"
        )
    return events


def _json(event: SSEEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise NotYet(f"the data line is not JSON: {event.data!r}") from None


# --- id_and_retry -----------------------------------------------------------------------------


def check_id_and_retry(format_event: Callable[..., str]) -> None:
    cases = [
        ("token", {"text": "Hello"}, 0, None),
        ("token", {"text": " two lines\n\nand a blank one"}, 7, None),
        ("start", {"model": "gpt-4o-mini"}, 1, 3000),
    ]
    for name, payload, event_id, retry_ms in cases:
        text = format_event(name, payload, event_id=event_id, retry_ms=retry_ms)
        if not isinstance(text, str):
            raise NotYet(f"return the event as a str, not {type(text).__name__}")
        events = _events(text)
        if len(events) != 1:
            raise NotYet(
                f"{payload!r} became {len(events)} events instead of one: {text!r} "
                "(a newline inside data must not end the event)"
            )
        event = events[0]
        if event.event != name:
            raise NotYet(f"expected `event: {name}`, the client saw {event.event!r}: {text!r}")
        if event.id != str(event_id):
            raise NotYet(f"expected `id: {event_id}`, the client saw id {event.id!r}: {text!r}")
        if event.retry != retry_ms:
            if retry_ms is None:
                raise NotYet(f"no `retry:` line when retry_ms is None: {text!r}")
            raise NotYet(
                f"expected `retry: {retry_ms}` (milliseconds, an integer), the client saw "
                f"{event.retry!r}: {text!r}"
            )
        if _json(event) != payload:
            raise NotYet(f"data should decode to {payload!r}, got {event.data!r}")


# --- usage_event ------------------------------------------------------------------------------

# Three content chunks carry 7 tokens: a chunk is not a token, so counting chunks gives 3.
_CHUNKS: list[dict[str, Any]] = [
    {"role": "assistant", "content": ""},
    {"content": "Hello"},
    {"content": " there, how"},
    {"content": " are you?"},
]
_USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> Any:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    )
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-exercise",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": choices,
            "usage": usage,
        }
    )


async def _provider_stream() -> AsyncIterator[ChatCompletionChunk]:
    for delta in _CHUNKS:
        yield _chunk(delta)
    yield _chunk({}, finish="stop")
    # As with stream_options={"include_usage": True}: last, and with no choices at all.
    yield _chunk(None, usage=_USAGE)


async def check_usage_event(
    token_and_usage_events: Callable[[AsyncIterable[ChatCompletionChunk]], AsyncIterator[str]],
) -> None:
    produced = token_and_usage_events(_provider_stream())
    if inspect.iscoroutine(produced):
        produced = await produced
    if not hasattr(produced, "__aiter__"):
        raise NotYet("write an async generator: `yield` each event's text")
    text = "".join([piece async for piece in produced])
    events = _events(text)
    names = [e.event for e in events]
    tokens = [_json(e).get("text") for e in events if e.event == "token"]
    if "".join(str(t) for t in tokens) != "Hello there, how are you?":
        raise NotYet(f"token events should carry the text pieces in order; got {tokens!r}")
    if "" in tokens:
        raise NotYet("skip deltas with no text: an empty token event is noise")
    if names.count("usage") != 1:
        raise NotYet(f"send exactly one `event: usage`; the events were {names}")
    if names[-1] != "usage":
        raise NotYet(f"usage is only known at the end: send it last; the events were {names}")
    usage = _json(events[-1])
    expected = {"input_tokens": 12, "output_tokens": 7}
    if usage != expected:
        hint = (
            " (3 is the number of content chunks: a chunk is not a token)"
            if 3 in usage.values()
            else ""
        )
        raise NotYet(f"usage should be the provider's counts {expected}, got {usage}{hint}")


# --- native_sse -------------------------------------------------------------------------------


async def check_native_sse(word_events: Callable[..., Any]) -> None:
    if not inspect.isasyncgenfunction(word_events):
        # Awaited directly, the generated stub raises NotImplementedError ("not attempted").
        outcome = word_events(_words_model(word_events)(words=["a"]))
        if inspect.iscoroutine(outcome):
            outcome = await outcome
        raise NotYet(
            "make it an async generator (`async def` with `yield`): FastAPI streams what it "
            f"yields; returning a {type(outcome).__name__} bypasses its SSE encoding"
        )
    app = FastAPI()
    app.post("/words", response_class=EventSourceResponse)(word_events)
    words = ["Streaming", " feels", " fast", "\n\nreally"]
    # A real server in a thread: FastAPI's SSE machinery runs exactly as it would in production.
    with BackgroundServer(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.post("/words", json={"words": words})
            invalid = await client.post("/words", json={"words": []})
    if response.status_code != 200:
        raise NotYet(f"the route answered {response.status_code}: {response.text[:200]}")
    if response.headers.get("x-accel-buffering") != "no":
        raise NotYet("the response lacks FastAPI's SSE headers: is it an EventSourceResponse?")
    events = parse_sse(response.text)
    names = [e.event for e in events if isinstance(e, SSEEvent)]
    expected_names = ["word"] * len(words) + ["done"]
    if names != expected_names:
        hint = (
            " (FastAPI JSON-encodes plain strings: yield ServerSentEvent objects, not "
            "preformatted `data:` text)"
            if names and set(names) == {"message"}
            else ""
        )
        raise NotYet(f"expected events {expected_names}, got {names}{hint}")
    sse_events = [e for e in events if isinstance(e, SSEEvent)]
    got_words = [_json(e).get("word") for e in sse_events[:-1]]
    if got_words != words:
        raise NotYet(f"word events should carry {words!r} in order, got {got_words!r}")
    ids = [e.id for e in sse_events[:-1]]
    if ids != [str(n) for n in range(len(words))]:
        raise NotYet(f"word events need ids 0, 1, 2, ...; got {ids}")
    if _json(sse_events[-1]) != {"count": len(words)}:
        raise NotYet(f"done should carry {{'count': {len(words)}}}, got {sse_events[-1].data}")
    if invalid.status_code != 422:
        raise NotYet("an empty list of words should be refused with 422: keep the Words model")
    openapi = app.openapi()["paths"]["/words"]["post"]["responses"]["200"]["content"]
    if "text/event-stream" not in openapi:
        raise NotYet("the OpenAPI description does not show an event stream")


def _words_model(word_events: Callable[..., Any]) -> Any:
    annotation = inspect.signature(word_events, eval_str=True).parameters["body"].annotation
    return annotation
