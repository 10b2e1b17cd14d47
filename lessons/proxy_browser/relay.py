"""POST /chat/stream made to pass through a reverse proxy: streaming headers and keep-alives.

What a proxy needs from a stream is in the core: `X-Accel-Buffering: no` on every streaming
response (nginx then passes bytes on as they come, whatever its config says), `Cache-Control:
no-cache`, and a `: ping` comment after `keepalive_interval_s` of silence, well under a proxy's
read timeout (nginx's `proxy_read_timeout` is 60 s by default).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    OpenAIClient,
    ProtectionSettings,
    RelayContext,
    RelaySettings,
    TokenEvents,
    create_relay_app,
    model_name,
    openai_chat_events,
)

router = APIRouter()


@router.post("/chat/stream", response_class=EventStream)
async def chat_stream(body: ChatRequest, relay: RelayContext, openai: OpenAIClient) -> EventStream:
    system = relay.system_prompt(body)
    return relay.stream(
        openai.chat.completions.create(
            model=model_name("openai"),
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=relay.max_tokens(body.max_tokens),
        ),
        openai_chat_events,
        TokenEvents(),
        provider="openai",
        prompt=[system, body.message],
    )


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    return create_relay_app(
        title="Proxy-ready /chat/stream",
        routers=[router],
        settings=settings,
        protection=protection,
        providers=("openai",),
    )


app = create_app()
