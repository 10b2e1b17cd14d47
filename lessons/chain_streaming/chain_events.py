"""POST /chain/events: a chain's astream_events v2 filtered to what a client needs."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter
from langchain_core.runnables.schema import StreamEvent

from lessons.chain_streaming.chains import STATS_STEP, build_stats_chain
from lessons.chain_streaming.chat_model import ChatModel
from lessons.chain_streaming.events import chain_event_items
from lessons.chain_streaming.opening import open_stream
from lessons.relay_core import EventStream, MessageRequest, NamedEvents, RelayContext

# The non-streaming steps whose end the client hears about, as `step` events.
REPORTED_STEPS = frozenset({STATS_STEP})

router = APIRouter()


def _is_model_stream(event: StreamEvent) -> bool:
    return event["event"] == "on_chat_model_stream"


@router.post("/chain/events", response_class=EventStream)
async def chain_events(body: MessageRequest, relay: RelayContext, llm: ChatModel) -> EventStream:
    """Named events: `start`, `token` {"text"}, `step` {"name", "output"} when a non-streaming
    step finishes, `usage`, then `done` {"finish_reason"}; or one `error` instead."""
    chain = build_stats_chain(llm.bind(max_tokens=relay.max_tokens(body.max_tokens)))
    events = chain.astream_events(
        {"message": body.message},
        version="v2",
        # Only the model's events and the reported steps' events are produced at all; the
        # prompt, the parser and the chain around them stay silent.
        include_types=["chat_model"],
        include_names=sorted(REPORTED_STEPS),
    )
    return relay.stream(
        # The first events (chain and model start) come before any HTTP request; the first
        # on_chat_model_stream means the provider has answered 200.
        open_stream(events, _is_model_stream),
        partial(chain_event_items, reported_steps=REPORTED_STEPS),
        NamedEvents(),
        provider="openai",
        prompt=[body.message],
    )
