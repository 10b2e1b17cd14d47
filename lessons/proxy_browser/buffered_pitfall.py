"""Wrong: no X-Accel-Buffering header, so nginx's default buffering holds tokens to the end.

Everything else is the proxy-ready relay of `relay.py`: the app streams correctly, and a client
talking to it directly sees tokens as they come. Behind nginx with its default `proxy_buffering
on`, the same client receives the whole reply in one piece when the stream ends.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import Response, StreamingResponse
from openai import AsyncOpenAI

from lessons.relay_core import ChatRequest, classify_before_stream, error_response, new_request_id
from lessons.sse_basics.chat_stream import relay_tokens
from lessons.sse_basics.openai_client import (
    MAX_COMPLETION_TOKENS,
    get_openai,
    openai_lifespan,
    openai_model,
)

app = FastAPI(title="Pitfall: no X-Accel-Buffering", lifespan=openai_lifespan)


@app.post("/chat/stream")
async def chat_stream(
    body: ChatRequest, client: Annotated[AsyncOpenAI, Depends(get_openai)]
) -> Response:
    request_id = new_request_id()
    try:
        stream = await client.chat.completions.create(
            model=openai_model(),
            messages=[
                {"role": "system", "content": body.system_prompt},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            max_completion_tokens=MAX_COMPLETION_TOKENS,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    # The pitfall: only Cache-Control. Nothing tells a proxy that this response is a stream.
    return StreamingResponse(
        relay_tokens(stream, request_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Request-ID": request_id},
    )
