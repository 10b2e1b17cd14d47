"""POST /responses/stream: the OpenAI Responses API, streamed as the relay's named events."""

from __future__ import annotations

from fastapi import APIRouter

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    NamedEvents,
    OpenAIClient,
    RelayContext,
    model_name,
    openai_responses_events,
)

router = APIRouter()


@router.post("/responses/stream", response_class=EventStream)
async def responses_stream(
    body: ChatRequest, relay: RelayContext, openai: OpenAIClient
) -> EventStream:
    """start, token*, usage, then done or error: the named events of /chat/events."""
    system = relay.system_prompt(body)
    return relay.stream(
        # The Responses API takes the system prompt as `instructions` and reports usage in its
        # terminal `response.completed` event, with no option to ask for.
        openai.responses.create(
            model=model_name("openai"),
            instructions=system,
            input=body.message,
            max_output_tokens=relay.max_tokens(body.max_tokens),
            stream=True,
        ),
        openai_responses_events,
        NamedEvents(),
        provider="openai",
        prompt=[system, body.message],
    )
