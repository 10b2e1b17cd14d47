"""The stream lifecycle, ending by ending: every way a stream can end closes its upstream, is
accounted once, and sends exactly one terminal event when someone is there to read it.

The response is driven directly with a fake client and a fake provider stream (core_harness.py),
so each ending is staged exactly and the suite needs no network for it; the fault matrix
(test_nb05_fault_matrix.py) checks the same endings end to end through every lesson relay.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import httpx2
import openai
import pytest
import uvicorn

from lessons.relay_core import (
    Batch,
    ErrorCode,
    EventStream,
    Finish,
    MetaEvents,
    NamedEvents,
    Token,
    TokenEvents,
    ToolCallDelta,
    Usage,
)
from tests.core_harness import FAST, Ended, FakeClient, FakeUpstream, adapter, opening, run

REPLY = [Token("Hello"), Token(", "), Token("world"), Finish("stop"), Usage(12, 3)]


def make(upstream: FakeUpstream, shape: Any = None, *, ended: Ended | None = None, **open_kw: Any):
    return EventStream(
        opening(upstream, **open_kw),
        adapter,
        shape or TokenEvents(),
        request_id="req_test",
        settings=FAST,
        provider="openai",
        model="m",
        on_end=ended,
    )


async def leave_after(client: FakeClient, seconds: float) -> None:
    await asyncio.sleep(seconds)
    client.leave()


def test_a_complete_reply_ends_with_done_and_closes_the_upstream() -> None:
    upstream, client, ended = FakeUpstream(REPLY), FakeClient(), Ended()
    stream = make(upstream, ended=ended)
    asyncio.run(run(stream, client))
    assert client.status == 200 and client.completed
    assert [w.kind for w in client.wire()] == ["token", "token", "token", "done"]
    assert "".join(w.text for w in client.wire()) == "Hello, world"
    assert upstream.closed_at is not None
    assert ended.outcomes == ["completed"]
    assert stream.summary.usage == Usage(12, 3) and stream.summary.tokens == 3


def test_a_stream_without_its_end_marker_is_an_error_never_done() -> None:
    client = FakeClient()
    asyncio.run(run(make(FakeUpstream([Token("cut"), Token(" sh")])), client))
    kinds = [w.kind for w in client.wire()]
    assert kinds == ["token", "token", "error"]
    assert client.wire()[-1].code == ErrorCode.STREAM_INTERRUPTED


def test_a_provider_failure_mid_stream_is_one_classified_error_event() -> None:
    request = httpx2.Request("POST", "https://provider.example/v1/chat/completions")
    boom = openai.APIError("internal detail chatcmpl-123", request, body={"type": "server_error"})
    upstream = FakeUpstream(REPLY, fail_after=2, error=boom)
    client, ended = FakeClient(), Ended()
    asyncio.run(run(make(upstream, ended=ended), client))
    wire = client.wire()
    assert [w.kind for w in wire] == ["token", "token", "error"]
    assert wire[-1].code == ErrorCode.PROVIDER_ERROR and wire[-1].request_id == "req_test"
    assert b"chatcmpl" not in client.body and b"internal detail" not in client.body
    assert upstream.closed_at is not None and ended.outcomes == ["error"]


def test_a_failure_before_the_stream_is_an_http_error_with_a_json_body() -> None:
    request = httpx2.Request("POST", "https://provider.example/v1/chat/completions")
    response = httpx2.Response(429, headers={"retry-after": "7"}, request=request)
    limited = openai.RateLimitError("slow down", response=response, body=None)
    client, ended = FakeClient(), Ended()
    asyncio.run(run(make(FakeUpstream(REPLY), error=limited, ended=ended), client))
    assert client.status == 429 and client.completed
    assert b'"code":"rate_limited"' in client.body and b"event-stream" not in client.body
    headers = dict(client.messages[0]["headers"])
    assert headers[b"retry-after"] == b"7" and headers[b"x-request-id"] == b"req_test"
    assert ended.outcomes == ["refused"]


def test_a_client_that_leaves_while_the_provider_has_not_answered_cancels_the_call() -> None:
    client, ended = FakeClient(), Ended()
    upstream = FakeUpstream(REPLY)
    stream = make(upstream, delay=30, ended=ended)

    async def scenario() -> float:
        started = time.monotonic()
        await asyncio.gather(run(stream, client), leave_after(client, 0.05))
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert elapsed < 1.0, "the 30 s open was not cancelled when the client left"
    assert client.messages == [] and upstream.pulled == 0
    assert ended.outcomes == ["client_disconnected"]


@pytest.mark.parametrize("tokens_before_leaving", [0, 2])
def test_a_client_that_leaves_gets_its_upstream_closed_within_milliseconds(
    tokens_before_leaving: int,
) -> None:
    # Token 0 (or 2) arrives at once; the next one would take 30 s: the client leaves meanwhile.
    delays = [0.0] * tokens_before_leaving + [30.0]
    upstream = FakeUpstream(REPLY, delays=delays)
    client, ended = FakeClient(), Ended()

    async def scenario() -> None:
        await asyncio.gather(run(make(upstream, ended=ended), client), leave_after(client, 0.05))

    asyncio.run(scenario())
    assert upstream.closed_at is not None and client.left_at is not None
    assert (upstream.closed_at - client.left_at) * 1000 < 100
    assert upstream.cancelled_reads == 1, "the read in progress was not cancelled"
    assert ended.outcomes == ["client_disconnected"]
    assert not client.completed, "nobody is there to read a terminal event"


def test_keepalive_comments_fill_the_wait_for_the_first_token() -> None:
    # Long open and first-token deadlines: the watchdog first sleeps towards the open deadline,
    # and must wake for the first keep-alive once the stream has opened.
    settings = replace(FAST, open_timeout_s=30, first_token_timeout_s=30, total_timeout_s=60)
    upstream = FakeUpstream(REPLY, delays=[0.35])
    client = FakeClient()
    stream = EventStream(
        opening(upstream), adapter, TokenEvents(), request_id="r", settings=settings
    )
    asyncio.run(run(stream, client))
    assert len(client.comments()) >= 2, "no keep-alive while the model worked on token one"
    assert all(c.text == "ping" for c in client.comments())
    assert client.wire()[-1].kind == "done"


@pytest.mark.parametrize(
    ("delays", "limit_s"),
    [
        ([FAST.first_token_timeout_s + 5], FAST.first_token_timeout_s),  # no first token
        ([0.0, 0.0, FAST.idle_timeout_s + 5], FAST.idle_timeout_s),  # silence mid-reply
    ],
    ids=["first_token", "idle"],
)
def test_a_silent_provider_ends_the_stream_at_its_deadline(
    delays: list[float], limit_s: float
) -> None:
    upstream = FakeUpstream(REPLY, delays=delays)
    client, ended = FakeClient(), Ended()

    async def scenario() -> float:
        started = time.monotonic()
        await run(make(upstream, ended=ended), client)
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert limit_s <= elapsed < limit_s + 0.5
    assert (
        client.wire()[-1].kind == "error" and client.wire()[-1].code == ErrorCode.PROVIDER_TIMEOUT
    )
    assert upstream.closed_at is not None and ended.outcomes == ["error"]


def test_the_whole_reply_has_a_deadline_however_steadily_it_flows() -> None:
    settings = replace(FAST, total_timeout_s=0.4)
    many = [Token("x")] * 100 + [Finish("stop")]
    upstream = FakeUpstream(many, delays=[0.02] * 100)
    client = FakeClient()
    stream = EventStream(
        opening(upstream), adapter, TokenEvents(), request_id="r", settings=settings
    )
    asyncio.run(run(stream, client))
    assert client.wire()[-1].code == ErrorCode.PROVIDER_TIMEOUT
    assert 10 < len(client.wire()) < 40


def test_a_deadline_after_the_end_marker_still_ends_with_done() -> None:
    # The provider sent its finish reason, then kept the connection open: the reply is whole.
    upstream = FakeUpstream([Token("all"), Finish("stop"), Usage(1, 1)], delays=[0, 0, 30])
    client = FakeClient()
    asyncio.run(run(make(upstream), client))
    assert [w.kind for w in client.wire()] == ["token", "done"]


@pytest.mark.parametrize("idle_timeout_s", [FAST.idle_timeout_s, 30.0])
def test_a_reader_that_stopped_reading_is_given_up_on_and_the_upstream_closed(
    idle_timeout_s: float,
) -> None:
    # With a long idle deadline the watchdog sleeps past the send deadline: a write must wake it.
    settings = replace(
        FAST, idle_timeout_s=idle_timeout_s, keepalive_interval_s=20, total_timeout_s=60
    )
    many = [Token("x" * 100)] * 50 + [Finish("stop")]
    upstream = FakeUpstream(many, delays=[0.001] * 50)
    client, ended = FakeClient(freeze_after_writes=5), Ended()
    stream = EventStream(
        opening(upstream), adapter, TokenEvents(), request_id="r", settings=settings, on_end=ended
    )

    async def scenario() -> float:
        started = time.monotonic()
        await run(stream, client)
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert FAST.send_timeout_s <= elapsed < FAST.send_timeout_s + 0.5
    assert ended.outcomes == ["reader_stalled"]
    assert upstream.closed_at is not None and upstream.pulled < 50


def test_shutdown_ends_a_stream_with_a_terminal_event() -> None:
    upstream = FakeUpstream(REPLY, delays=[0, 30])
    client, ended = FakeClient(), Ended()
    stream = make(upstream, NamedEvents(), ended=ended)

    async def scenario() -> None:
        async def stop_soon() -> None:
            await asyncio.sleep(0.05)
            stream.stop("shutdown")

        await asyncio.gather(run(stream, client), stop_soon())

    asyncio.run(scenario())
    last = client.wire()[-1]
    assert last.kind == "error" and last.code == ErrorCode.SHUTTING_DOWN
    assert client.completed and upstream.closed_at is not None
    assert ended.outcomes == ["shutdown"]


def test_cancelled_from_outside_the_upstream_is_still_closed_and_accounted() -> None:
    upstream = FakeUpstream(REPLY, delays=[0, 30])
    client, ended = FakeClient(), Ended()

    async def scenario() -> None:
        task = asyncio.ensure_future(run(make(upstream, ended=ended), client))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert upstream.closed_at is not None
    assert ended.outcomes == ["client_disconnected"]


def test_closing_a_hung_upstream_is_bounded() -> None:
    upstream = FakeUpstream(REPLY, hang_close=True)

    async def scenario() -> float:
        started = time.monotonic()
        await run(make(upstream), FakeClient())
        return time.monotonic() - started

    assert asyncio.run(scenario()) < FAST.close_timeout_s + 0.5


def test_a_stream_runs_one_task_whatever_its_length() -> None:
    """The watchdog is the only task: no task per token (a timeout around each read would
    need one, to keep the read alive when a keep-alive is due)."""
    created: list[Any] = []

    async def scenario(tokens: int) -> int:
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop_: Any, coro: Any, **kwargs: Any) -> Any:
            created.append(coro)
            return asyncio.Task(coro, loop=loop_, **kwargs)

        loop.set_task_factory(counting)
        try:
            items = [Token("x")] * tokens + [Finish("stop")]
            await run(make(FakeUpstream(items)), FakeClient())
        finally:
            loop.set_task_factory(factory)
        return len(created)

    short = asyncio.run(scenario(10))
    created.clear()
    long = asyncio.run(scenario(5_000))
    assert short == long <= 2


def test_a_batch_is_written_in_one_send() -> None:
    batch = Batch((Token("a"), Token("b"), Token("c")))
    client = FakeClient()
    asyncio.run(run(make(FakeUpstream([batch, Finish("stop")])), client))
    bodies = [m["body"] for m in client.messages if m["type"] == "http.response.body" and m["body"]]
    assert bodies[0].count(b"data:") == 3
    assert "".join(w.text for w in client.wire()) == "abc"


def test_shapes_frame_the_same_reply_as_their_routes_promise() -> None:
    items = [Token("Hi"), ToolCallDelta(0, "call_1", "lookup", "{}"), Finish("stop"), Usage(5, 2)]
    meta, named = FakeClient(), FakeClient()
    asyncio.run(run(make(FakeUpstream(items), MetaEvents()), meta))
    asyncio.run(run(make(FakeUpstream(items), NamedEvents()), named))
    assert meta.events()[0].data == '{"event":"start","model":"m"}'
    assert '"tokens":2' in meta.events()[-1].data
    names = [e.event for e in named.events()]
    assert names == ["start", "token", "tool_call", "usage", "done"]
    assert [e.id for e in named.events()] == ["1", "2", "3", "4", "5"]


def test_the_idle_deadline_applies_from_the_first_piece_whatever_the_watchdog_waited_for() -> None:
    """When the first piece arrives, the watchdog may be asleep towards the first-token deadline
    (5 s here): the first piece must wake it, or a 0.3 s idle limit waits 5 s instead."""
    settings = replace(
        FAST,
        first_token_timeout_s=5,
        keepalive_interval_s=20,
        send_timeout_s=20,
        total_timeout_s=60,
    )
    # The first piece comes 50 ms after the provider answered (the watchdog is asleep by then),
    # the second at once, then a silence of 30 s.
    upstream = FakeUpstream(REPLY, delays=[0.05, 0, 30])
    client = FakeClient()
    stream = EventStream(
        opening(upstream), adapter, TokenEvents(), request_id="r", settings=settings
    )

    async def scenario() -> float:
        started = time.monotonic()
        await run(stream, client)
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert elapsed < 0.05 + FAST.idle_timeout_s + 0.5
    assert client.wire()[-1].code == ErrorCode.PROVIDER_TIMEOUT


def test_each_worker_of_several_runs_a_draining_server_with_its_timeout() -> None:
    """`serve(workers=2)` hands uvicorn's supervisor a config that is pickled to each worker;
    the worker builds a DrainingServer from it, with the drain timeout asked for."""
    import pickle

    from lessons.relay_core.server import DrainingServer, _DrainingConfig, _DrainingProcess

    config = pickle.loads(pickle.dumps(_DrainingConfig("pkg.app:app", drain_timeout_s=12.5)))
    worker = _DrainingProcess.__new__(_DrainingProcess)  # no child process: only its server
    worker.config, worker._server = config, None
    assert isinstance(worker.server, DrainingServer) and worker.server.drain_timeout_s == 12.5
    assert worker.server.freeze_after_startup


def test_a_server_process_freezes_what_it_holds_after_startup_and_a_notebooks_does_not() -> None:
    """serve()'s servers move what startup loaded out of the collector's reach (a full
    collection of a service worker stalled every stream for 85-100 ms); a DrainingServer made
    by hand, as notebook 05 does inside a kernel, leaves the kernel's collector alone."""
    import gc
    import threading

    from fastapi import FastAPI

    from lessons.relay_core.server import DrainingServer

    for freeze, expect_frozen in ((False, False), (True, True)):
        gc.unfreeze()
        config = uvicorn.Config(FastAPI(), host="127.0.0.1", port=0, log_level="warning")
        server = DrainingServer(config, freeze_after_startup=freeze)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.started
            assert (gc.get_freeze_count() > 0) is expect_frozen
        finally:
            server.should_exit = True
            thread.join(10)
            gc.unfreeze()
