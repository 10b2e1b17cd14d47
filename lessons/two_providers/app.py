"""Notebook 02's routes in one app: /anthropic/stream, /responses/stream and /relay/stream."""

from __future__ import annotations

from fastapi import FastAPI

from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app
from lessons.two_providers import anthropic_stream, relay, responses_stream


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    return create_relay_app(
        title="Streaming from OpenAI and Anthropic",
        routers=[anthropic_stream.router, responses_stream.router, relay.router],
        settings=settings,
        protection=protection,
    )


app = create_app()
