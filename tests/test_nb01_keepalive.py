"""Keep-alive pings: with_keepalive alone, and on /chat/events with a slow first token."""

from __future__ import annotations

import asyncio

from lessons.relay_core import with_keepalive
from lessons.sse_basics import native_events
from lessons.toolkit.sse_parser import SSEComment, SSEEvent
from lessons.toolkit.testkit import collect_sync


async def _slow_source(log: list[str], delays: list[float]):
    try:
        for n, delay in enumerate(delays):
            await asyncio.sleep(delay)
            yield n
        log.append("completed")
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    finally:
        log.append("closed")


def test_pings_fill_silences_without_disturbing_the_source() -> None:
    async def main() -> tuple[list[object], list[str]]:
        log: list[str] = []
        out = [x async for x in with_keepalive(_slow_source(log, [0.25, 0, 0.25]), 0.05, "ping")]
        return out, log

    out, log = asyncio.run(main())
    # Every item arrives, in order: a ping timer firing never cancels the pending item.
    assert [x for x in out if x != "ping"] == [0, 1, 2]
    assert out.index(0) >= 2, f"expected pings during the first silence: {out}"
    assert out[out.index(0) + 1] == 1, "no ping between items that come back to back"
    assert out[-1] == 2 and log == ["completed", "closed"]


def test_closing_the_wrapper_closes_the_source() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        wrapped = with_keepalive(_slow_source(log, [0, 10]), 0.05, "ping")
        assert await anext(wrapped) == 0
        assert await anext(wrapped) == "ping"
        await wrapped.aclose()  # what a client disconnect does to the response's generator
        return log

    assert asyncio.run(main()) == ["cancelled", "closed"]


def test_a_source_error_propagates() -> None:
    async def failing():
        yield 1
        raise RuntimeError("boom")

    async def main() -> list[object]:
        out: list[object] = []
        try:
            async for x in with_keepalive(failing(), 1.0, "ping"):
                out.append(x)
        except RuntimeError as exc:
            out.append(str(exc))
        return out

    assert asyncio.run(main()) == [1, "boom"]


def test_events_route_pings_while_the_model_is_slow_to_start(mock, serve) -> None:
    mock.script(prompt_contains="Say hello.", ttft_ms=400)
    url = serve(native_events.create_app(keepalive_interval_s=0.05))
    record = collect_sync(url + "/chat/events", {"message": "Say hello."})
    items: list[SSEEvent | SSEComment] = record.items
    names = ["ping" if isinstance(i, SSEComment) else i.event for i in items]
    first_token = names.index("token")
    # Pings come after start (the provider has answered 200) and before the first token.
    assert names[0] == "start"
    assert names[1:first_token].count("ping") >= 2, names
    assert set(names[1:first_token]) == {"ping"}
    assert names[-1] == "done"
    comments = [i for i in items if isinstance(i, SSEComment)]
    assert {c.text for c in comments} == {"ping"}
