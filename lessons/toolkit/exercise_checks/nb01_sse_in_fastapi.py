"""Checkers for notebook 01's exercises."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.sse import EventSourceResponse

from lessons.mock_providers.tokens import split_pieces
from lessons.relay_core import (
    EventStream,
    MessageRequest,
    OpenAIClient,
    RelayContext,
    create_relay_app,
    model_name,
    openai_chat_events,
)
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.concurrency import private_mock
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.nb01_probes import uvicorn_errors
from lessons.toolkit.sse_parser import SSEDecoder, SSEEvent, parse_sse
from lessons.toolkit.testkit import collect_sync


def _as_a_client_reads(text: str) -> str:
    """What a client's `data` is for `text`: SSE has no way to carry a lone CR."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(wire: bytes) -> tuple[list[SSEEvent], str | None]:
    decoder = SSEDecoder()
    events = [e for e in decoder.feed(wire) if isinstance(e, SSEEvent)]
    decoder.close()
    return events, decoder.incomplete_tail


# --- plain_text_events --------------------------------------------------------------------------

_PIECES = [
    "Hello",
    " How",  # a leading space is part of the text
    "first paragraph.\n\nSecond",
    "ends with a line break\n",
    "\n",
    "carriage\rreturn",
    "windows\r\nline",
    "data: forged\n\nevent: error\ndata: injected",
]
# A reply with line breaks of every kind, streamed by the mock in the pieces split_pieces gives.
_REPLY = "Line one.\n\nLine two,\r\nand three.\n  indented\rend"


def _plain_text_app(shape_class: type) -> FastAPI:
    router = APIRouter()

    @router.post("/plain", response_class=EventStream)
    async def plain(body: MessageRequest, relay: RelayContext, openai: OpenAIClient) -> Any:
        return relay.stream(
            openai.chat.completions.create(
                model=model_name("openai"),
                messages=[{"role": "user", "content": body.message}],
                stream=True,
                stream_options={"include_usage": True},
            ),
            openai_chat_events,
            shape_class(),
            provider="openai",
        )

    return create_relay_app(title="exercise", routers=[router], providers=("openai",))


def check_plain_text_events(shape_class: type) -> None:
    shape = shape_class()
    for piece in _PIECES:
        wire = shape.token(piece)
        if not isinstance(wire, bytes):
            raise NotYet(f"token() must return bytes (the wire), not {type(wire).__name__}")
        events, tail = _decode(wire)
        if tail is not None:
            raise NotYet(
                f"token({piece!r}) gave {wire!r}, which does not end with the blank line that "
                "ends an event"
            )
        if len(events) != 1:
            raise NotYet(
                f"token({piece!r}) became {len(events)} events instead of one: {wire!r} (a line "
                "break in the text must not end the event)"
            )
        event = events[0]
        if event.event != "message":
            raise NotYet(
                f"token({piece!r}) became an event named {event.event!r}: a line of the text "
                f"was read as a field of its own ({wire!r})"
            )
        if event.data != _as_a_client_reads(piece):
            try:
                json.loads(event.data)
                hint = " (the data is JSON: send the text itself)"
            except ValueError:
                hint = ""
            raise NotYet(
                f"token({piece!r}) reaches a client as {event.data!r}, expected "
                f"{_as_a_client_reads(piece)!r}{hint}: {wire!r}"
            )
    # The same shape as a relay's, against a provider whose reply has line breaks of all kinds.
    with private_mock() as mock:
        mock.script(reply=_REPLY, times=None)
        with BackgroundServer(_plain_text_app(shape_class)) as server:
            record = collect_sync(server.url + "/plain", {"message": "Write some lines."})
    expected = "".join(_as_a_client_reads(piece) for piece in split_pieces(_REPLY))
    got = "".join(e.data for e in record.events if e.event == "message")
    if got != expected:
        raise NotYet(f"through the relay, a client read {got!r}, expected {expected!r}")
    if [e.event for e in record.events][-1:] != ["done"]:
        raise NotYet(f"the stream should end with `event: done`: {record.summary()}")


# --- read_reply ---------------------------------------------------------------------------------


def _named(event_id: int | None, name: str, payload: dict[str, Any]) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


_START = _named(1, "start", {"provider": "openai", "model": "gpt-4o-mini", "request_id": "req_1"})
_TOKENS = [_named(n + 2, "token", {"text": t}) for n, t in enumerate(["Hello", "!", " How"])]
_USAGE = _named(5, "usage", {"input_tokens": 21, "output_tokens": 3})
_DONE = _named(6, "done", {"finish_reason": "stop", "ttft_ms": 7.1, "latency_ms": 47.2})
_ERROR = {"code": "provider_error", "message": "The model provider failed to produce a reply."}

# (what the case is, the text received, expected text, last event id, ending)
_REPLIES: list[tuple[str, str, str, str | None, str]] = [
    ("a whole stream", _START + "".join(_TOKENS) + _USAGE + _DONE, "Hello! How", "6", "done"),
    (
        "a stream with keep-alive comments",
        _START + ": ping\n\n" + _TOKENS[0] + ": ping\n\n" + "".join(_TOKENS[1:]) + _USAGE + _DONE,
        "Hello! How",
        "6",
        "done",
    ),
    (
        "a stream cut in the middle of its fourth event",
        _START + "".join(_TOKENS[:2]) + _TOKENS[2][:-1],
        "Hello!",
        "3",
        "cut",
    ),
    (
        "a stream cut just after an id line",
        _START + "".join(_TOKENS[:2]) + "id: 4\n",
        "Hello!",
        "3",
        "cut",
    ),
    (
        "a stream that ended with an error event",
        _START + "".join(_TOKENS[:2]) + _named(4, "error", {**_ERROR, "request_id": "req_1"}),
        "Hello!",
        "4",
        "error:provider_error",
    ),
    (
        "a last error event without an id",
        _START + "".join(_TOKENS) + _named(None, "error", {**_ERROR, "request_id": "req_1"}),
        "Hello! How",
        "4",
        "error:provider_error",
    ),
    (
        "a stream whose line endings a proxy rewrote to CR LF",
        (_START + "".join(_TOKENS) + _USAGE + _DONE).replace("\n", "\r\n"),
        "Hello! How",
        "6",
        "done",
    ),
    ("nothing at all", "", "", None, "cut"),
]


def check_read_reply(read_reply: Callable[[str], Any]) -> None:
    for case, raw, text, last_id, ending in _REPLIES:
        reply = read_reply(raw)
        try:
            got = (reply.text, reply.last_event_id, reply.ending)
        except AttributeError:
            raise NotYet(f"return a Reply(text, last_event_id, ending), not {reply!r}") from None
        if got[0] != text:
            raise NotYet(f"for {case}, the text should be {text!r}, got {got[0]!r}")
        if got[1] != last_id:
            raise NotYet(
                f"for {case}, a reconnecting client would send Last-Event-ID {last_id!r}, "
                f"you said {got[1]!r}"
            )
        if got[2] != ending:
            raise NotYet(f"for {case}, the ending is {ending!r}, you said {got[2]!r}")


# --- resume_words -------------------------------------------------------------------------------


def _dependency(word_events: Callable[..., Any]) -> Callable[..., Any] | None:
    for parameter in inspect.signature(word_events, eval_str=True).parameters.values():
        for meta in getattr(parameter.annotation, "__metadata__", ()):
            if getattr(meta, "dependency", None) is not None:
                return meta.dependency
    return None


def _body_model(function: Callable[..., Any]) -> Any:
    return inspect.signature(function, eval_str=True).parameters["body"].annotation


async def check_resume_words(word_events: Callable[..., Any]) -> None:
    seen_dependency = _dependency(word_events)
    if seen_dependency is None:
        raise NotYet("keep the `seen: Annotated[int, Depends(events_seen)]` parameter")
    words_model = _body_model(word_events)
    seen_dependency(words_model(words=["a"]), None)  # the stub raises NotImplementedError here
    if not inspect.isasyncgenfunction(word_events):
        outcome = word_events(words_model(words=["a"]), 0)
        if inspect.iscoroutine(outcome):
            outcome = await outcome  # the stub raises NotImplementedError here
        raise NotYet(
            "make word_events an async generator (`async def` with `yield`): FastAPI streams "
            f"what it yields; returning a {type(outcome).__name__} bypasses its SSE encoding"
        )
    app = FastAPI()
    app.post("/words", response_class=EventSourceResponse)(word_events)
    words = ["Streaming", " feels", " fast", "\n\nreally"]
    body = {"words": words}
    with BackgroundServer(app) as server, uvicorn_errors(settle_s=0.2):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

            async def post(last_event_id: str | None) -> httpx.Response:
                headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
                try:
                    return await client.post("/words", json=body, headers=headers)
                except httpx.TransportError:
                    raise NotYet(
                        f"with Last-Event-ID {last_event_id!r}, the stream broke off: an "
                        "exception raised in the generator comes after the 200 has been sent; "
                        "refuse in events_seen, which FastAPI runs before the response"
                    ) from None

            cases = {seen: await post(seen) for seen in (None, "2", "4", "5")}
            refused = {bad: await post(bad) for bad in ("0", "6", "two", "-1", "")}
            empty = await client.post("/words", json={"words": []})
    whole = cases[None]
    if whole.status_code != 200 or whole.headers.get("x-accel-buffering") != "no":
        raise NotYet(f"the route answered {whole.status_code}: {whole.text[:200]}")
    expected = [(str(n), "word", {"word": w}) for n, w in enumerate(words, start=1)]
    expected.append((str(len(words) + 1), "done", {"count": len(words)}))
    for seen, response in cases.items():
        events = [e for e in parse_sse(response.text) if isinstance(e, SSEEvent)]
        got = [(e.id, e.event, json.loads(e.data)) for e in events]
        after = int(seen) if seen is not None else 0
        want = expected[after:]
        if got != want:
            who = "a first request" if seen is None else f"Last-Event-ID: {seen}"
            raise NotYet(f"for {who}, expected (id, event, data) {want}, got {got}")
    for bad, response in refused.items():
        if response.status_code != 400:
            raise NotYet(
                f"Last-Event-ID: {bad!r} is not an id of this stream (ids are 1 to "
                f"{len(words) + 1}): expected a 400 before the stream, got {response.status_code}"
                + (
                    " (a generator cannot refuse: the 200 is already sent; check in events_seen)"
                    if response.status_code == 200
                    else ""
                )
            )
    if empty.status_code != 422:
        raise NotYet("an empty list of words should be refused with 422: keep the Words model")
