"""POST /chat/stream made to pass through a reverse proxy: streaming headers and keep-alives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from openai import AsyncOpenAI

from lessons.relay_core import (
    ChatRequest,
    classify_before_stream,
    error_response,
    new_request_id,
    sse_comment,
    streaming_response,
    with_keepalive,
)
from lessons.sse_basics.chat_stream import relay_tokens
from lessons.sse_basics.openai_client import (
    MAX_COMPLETION_TOKENS,
    get_openai,
    openai_lifespan,
    openai_model,
)

# Well under nginx's default proxy_read_timeout (60 s) and typical load balancer idle timeouts.
DEFAULT_PING_INTERVAL_S = 15.0

router = APIRouter()


@router.post("/chat/stream")
async def chat_stream(
    body: ChatRequest, request: Request, client: Annotated[AsyncOpenAI, Depends(get_openai)]
) -> Response:
    request_id = new_request_id()
    try:
        # Opened before the response starts: a provider failure still becomes an HTTP status.
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
    # Comments during silences keep a proxy's read timeout from cutting a slow reply.
    events = with_keepalive(
        relay_tokens(stream, request_id), request.app.state.ping_interval_s, sse_comment("ping")
    )
    # streaming_response sends X-Accel-Buffering: no, which turns nginx's buffering off for this
    # response only, whatever the proxy's config says.
    return streaming_response(events, request_id=request_id)


def create_app(*, ping_interval_s: float = DEFAULT_PING_INTERVAL_S) -> FastAPI:
    app = FastAPI(title="Proxy-ready /chat/stream", lifespan=openai_lifespan)
    app.state.ping_interval_s = ping_interval_s
    app.include_router(router)
    return app


app = create_app()
