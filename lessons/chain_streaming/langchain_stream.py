"""POST /langchain/stream: a LangChain chat model's reply as `{"token", "done"}` events."""

from __future__ import annotations

from fastapi import APIRouter
from langchain_core.messages import HumanMessage, SystemMessage

from lessons.chain_streaming.chat_model import ChatModel
from lessons.chain_streaming.events import message_chunk_events
from lessons.chain_streaming.opening import open_stream
from lessons.relay_core import EventStream, MessageRequest, RelayContext, TokenEventsWithUsage

router = APIRouter()


@router.post("/langchain/stream", response_class=EventStream)
async def langchain_stream(
    body: MessageRequest, relay: RelayContext, llm: ChatModel
) -> EventStream:
    """`data: {"token": ..., "done": false}` per piece, then `{"token": "", "done": true,
    "usage": {...}}` with the provider's usage, or one terminal error event."""
    system = relay.settings.system_prompt
    model = llm.bind(max_tokens=relay.max_tokens(body.max_tokens))
    chunks = model.astream([SystemMessage(content=system), HumanMessage(content=body.message)])
    return relay.stream(
        # astream() sends no request until it is iterated: open_stream pulls the first chunk,
        # so that a provider failure is still an HTTP error (see opening.py).
        open_stream(chunks),
        message_chunk_events,
        TokenEventsWithUsage(),
        provider="openai",
        prompt=[system, body.message],
    )
