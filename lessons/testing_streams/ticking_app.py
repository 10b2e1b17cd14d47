"""A provider-free stream of numbered ticks at a fixed pace: one slow stream for every transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import StreamingResponse

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS, sse_event

app = FastAPI(title="Ticks")


async def ticks(count: int, interval_s: float) -> AsyncIterator[str]:
    for number in range(1, count + 1):
        await asyncio.sleep(interval_s)  # also where a disconnect cancels us
        yield sse_event("tick", {"n": number}, event_id=number)
    yield sse_event("done", {"ticks": count})


@app.get("/ticks")
async def tick_stream(
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
    interval_ms: Annotated[int, Query(ge=0, le=5000)] = 50,
) -> StreamingResponse:
    # Not a relay (no provider, nothing to close): a plain StreamingResponse is all it needs.
    return StreamingResponse(
        ticks(count, interval_ms / 1000), media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS
    )
