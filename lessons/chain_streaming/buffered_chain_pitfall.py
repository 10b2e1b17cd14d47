"""Wrong: .astream on a chain ending in a non-streaming step sends nothing until the very end.

The lifecycle is the core's, and right; the defect is the chain. `.astream` yields the *last*
step's output, and `answer_stats` is a plain function, so it waits for the whole answer: the
client gets one `output` event at the end (the stats) and never the answer's tokens. The fix is
`astream_events` (lessons/chain_streaming/chain_events.py), which streams every step.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI

from lessons.chain_streaming.chains import build_stats_chain
from lessons.chain_streaming.chat_model import ChatModel, model_lifespan
from lessons.chain_streaming.events import ModelEnd
from lessons.chain_streaming.opening import open_stream
from lessons.relay_core import (
    CustomEvent,
    EventStream,
    Finish,
    MessageRequest,
    NamedEvents,
    RelayContext,
    StreamItem,
    create_relay_app,
)

router = APIRouter()


async def outputs_as_events(
    outputs: AsyncIterable[dict[str, int]], model_end: ModelEnd
) -> AsyncIterator[StreamItem]:
    async for output in outputs:
        yield CustomEvent("output", output)
    if model_end.finish_reason is not None:
        yield Finish(model_end.finish_reason)


@router.post("/chain/buffered", response_class=EventStream)
async def chain_buffered(body: MessageRequest, relay: RelayContext, llm: ChatModel) -> EventStream:
    model_end = ModelEnd()
    outputs = build_stats_chain(llm).astream(
        {"message": body.message}, config={"callbacks": [model_end]}
    )
    return relay.stream(
        open_stream(outputs),
        partial(outputs_as_events, model_end=model_end),
        NamedEvents(),
        provider="openai",
        prompt=[body.message],
    )


def create_app(**model_options: Any) -> FastAPI:
    return create_relay_app(
        title="Buffered chain (pitfall)",
        routers=[router],
        providers=(),
        lifespan=model_lifespan(**model_options),
    )


app = create_app()
