"""POST /chat/stream on the fast path: notebook 01's contract for a fraction of the CPU.

The route is the same as notebook 01's `/chat/stream` but for two lines: the opening is a plain
HTTP request made with aiohttp (`open_chat_completion`), and the adapter parses the wire itself
(`fast_chat_events`), both in `lessons/relay_core/fastpath.py`. Everything else, and every
guarantee, is the core's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    RelayContext,
    TokenEvents,
    model_name,
)
from lessons.relay_core.fastpath import (
    ChatCompletionsClient,
    fast_chat_events,
    open_chat_completion,
)

router = APIRouter()


async def get_fast_client(request: Request) -> ChatCompletionsClient:
    return request.app.state.fast_openai


FastClient = Annotated[ChatCompletionsClient, Depends(get_fast_client)]


@router.post("/chat/stream", response_class=EventStream)
async def chat_stream_fast(body: ChatRequest, relay: RelayContext, http: FastClient) -> EventStream:
    system = relay.system_prompt(body)
    return relay.stream(
        open_chat_completion(
            http,
            {
                "model": model_name("openai"),
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": body.message},
                ],
                "stream_options": {"include_usage": True},
                "max_completion_tokens": relay.max_tokens(body.max_tokens),
            },
        ),
        fast_chat_events,
        TokenEvents(),
        provider="openai",
        prompt=[system, body.message],
    )
