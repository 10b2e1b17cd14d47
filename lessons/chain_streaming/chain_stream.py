"""POST /chain/stream: a prompt | model | parser chain streamed to the client with .astream."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from lessons.chain_streaming.chains import build_answer_chain
from lessons.chain_streaming.chat_model import ChatModel
from lessons.chain_streaming.events import ModelEnd, text_piece_events
from lessons.chain_streaming.opening import open_stream
from lessons.relay_core import EventStream, MessageRequest, NamedEvents, RelayContext

router = APIRouter()


@router.post("/chain/stream", response_class=EventStream)
async def chain_stream(body: MessageRequest, relay: RelayContext, llm: ChatModel) -> EventStream:
    """The chain's output as named events: start, `token` {"text"}, usage, then done or error."""
    chain = build_answer_chain(llm.bind(max_tokens=relay.max_tokens(body.max_tokens)))
    # The chain yields the parser's text pieces, which do not say how the model's stream
    # ended; the callback hears it from the model.
    model_end = ModelEnd()
    pieces = chain.astream({"message": body.message}, config={"callbacks": [model_end]})
    return relay.stream(
        open_stream(pieces),
        partial(text_piece_events, model_end=model_end),
        NamedEvents(),
        provider="openai",
        prompt=[body.message],
    )
