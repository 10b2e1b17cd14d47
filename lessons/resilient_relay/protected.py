"""The relay as it is deployed: it refuses every request until client tokens are configured.

The same route as relay.py, built with `deployed=True`: without `RELAY_CLIENT_TOKENS` every
request gets 401 (fail closed); with it, each client authenticates with its bearer token and gets
its own budgets (streams at once, requests per minute, tokens per hour). The system prompt is the
server's: a request that sets one is refused with a 422.
"""

from __future__ import annotations

from fastapi import FastAPI

from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app
from lessons.resilient_relay.relay import router

DEPLOYED_SETTINGS = RelaySettings(client_system_prompt=False)


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    return create_relay_app(
        title="Protected relay",
        routers=[router],
        settings=settings or DEPLOYED_SETTINGS,
        protection=protection,
        deployed=True,
        providers=("openai",),
    )


app = create_app()
