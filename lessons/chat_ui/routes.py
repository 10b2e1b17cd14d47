"""`POST /api/chat` on the UI message stream protocol, and the routes `useChat` resumes with.

- `POST /api/chat`: a turn. The reply is generated apart from this connection, into the
  generation store, by the core's producer; this response is its first reader. So a page that
  reloads mid-reply loses nothing: it reads the same generation again.
- `GET /api/chat/{id}/stream`: what `useChat({resume: true})` asks on mount. It replays the
  chat's latest reply from its start (the AI SDK's default transport expects a replay,
  `resumeStreamIsReplay`), or answers 204 when there is nothing to resume.
- `DELETE /api/chat/{id}/stream`: Stop. `useChat`'s `stop()` only aborts its fetch, which a
  generation outlives by design (for `abandon_after_s`); the page calls this too, and the
  producer ends at once, closing the provider's stream.
- `GET /api/chat/{id}`: the chat's messages, for a reloaded page (see `chats.py`).

Authentication: when `RELAY_CLIENT_TOKENS` is set, every route here needs `Authorization: Bearer`,
which the page sends through the transport's `headers` (fetch can send headers, unlike
EventSource, so no grant cookie is needed). Each chat belongs to the client that started it.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from lessons.chat_ui.chats import archive_reply, history
from lessons.chat_ui.protocol import UIMessageStream, UIReplay
from lessons.chat_ui.requests import (
    ChatTurnRequest,
    to_anthropic_messages,
    to_openai_responses_input,
)
from lessons.chat_ui.tools import Toolbox
from lessons.chat_ui.turn import AnthropicTurn, OpenAIResponsesTurn, ProviderTurn, run_turn
from lessons.relay_core import (
    AnthropicClient,
    ErrorCode,
    EventStream,
    OpenAIClient,
    ReaderContext,
    Refused,
    Relay,
    RelayContext,
    RelayError,
    invalid,
    model_name,
)
from lessons.relay_core.generations import follow, reader_settings, ready

# How long a reply stays replayable after it ended, and how long one nobody reads keeps being
# generated (and paid for) before it is abandoned: long enough for a reload.
RETAIN_S = 300.0
ABANDON_AFTER_S = 10.0
# A producer renews its claim on a reply this often (a third of it): readers elsewhere can tell a
# producer that died (its lease lapsed) from a slow one.
LEASE_S = 5.0

ChatId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]

router = APIRouter()


def system_prompt(body: ChatTurnRequest, relay: Relay) -> str:
    """The server's system prompt, or the conversation's system messages where allowed."""
    asked = body.system_text()
    if asked is None:
        return relay.settings.system_prompt
    if not relay.settings.client_system_prompt:
        raise invalid("messages", "this server sets the system prompt; send no system message")
    return asked


def provider_turn(
    body: ChatTurnRequest,
    system: str,
    toolbox: Toolbox,
    max_tokens: int,
    openai: Any,
    anthropic: Any,
) -> ProviderTurn:
    """The turn for the provider the body asks for, with the history in that provider's form."""
    if body.provider == "anthropic":
        return AnthropicTurn(
            anthropic,
            model_name("anthropic"),
            system,
            to_anthropic_messages(body.messages),
            toolbox,
            max_tokens,
            reasoning=body.reasoning,
        )
    return OpenAIResponsesTurn(
        openai,
        model_name("openai"),
        system,
        to_openai_responses_input(body.messages),
        toolbox,
        max_tokens,
        reasoning=body.reasoning,
    )


def replay_reply(request: Request, request_id: str, generation_id: str) -> EventStream:
    """One reader of a generation: every chunk from its start, then live, until its end."""
    state = request.app.state
    settings = state.settings
    return EventStream(
        ready(generation_id),
        lambda gid: follow(state.generations, gid, None, wait_s=settings.keepalive_interval_s * 3),
        UIReplay(),
        request_id=request_id,
        settings=reader_settings(settings, state.retain_s),
        registry=state.streams,
    )


@router.post("/api/chat", response_class=EventStream)
async def chat(
    body: ChatTurnRequest,
    request: Request,
    relay: RelayContext,
    openai: OpenAIClient,
    anthropic: AnthropicClient,
) -> EventStream:
    """One turn: the reply as UI message stream chunks, tool steps included."""
    state = request.app.state
    if state.chats.taken(body.id, relay.client_id):
        raise Refused(RelayError(ErrorCode.NOT_FOUND, relay.request_id))
    system = system_prompt(body, relay)
    toolbox: Toolbox = state.toolbox.only(body.tools)
    turn = provider_turn(
        body, system, toolbox, relay.max_tokens(body.max_tokens), openai, anthropic
    )
    reply_id = f"msg-{secrets.token_urlsafe(12)}"
    generation_id = secrets.token_urlsafe(16)
    meta = await relay.generate(
        state.generations,
        turn.open(),
        lambda upstream: run_turn(upstream, turn, toolbox, state.limits),
        provider=body.provider,
        prompt=[system, *body.texts()],
        shape=UIMessageStream(reply_id),
        abandon_after_s=state.abandon_after_s,
        lease_s=LEASE_S,
        generation_id=generation_id,
    )
    messages = [message.model_dump(mode="json", exclude_none=True) for message in body.messages]
    replaced = state.chats.begin_turn(body.id, relay.client_id, messages, meta.id)
    if replaced is not None:
        # One reply per chat: a new turn stops the one still running, if any.
        await state.generations.request_stop(replaced)
    state.streams.spawn(archive_reply(state.generations, state.chats, body.id, meta.id))
    return replay_reply(request, relay.request_id, meta.id)


@router.get("/api/chat/{chat_id}/stream", response_model=None)
async def resume(chat_id: ChatId, request: Request, reader: ReaderContext) -> Response:
    """The chat's latest reply from its start, while it can be replayed; else 204."""
    state = request.app.state
    chat = state.chats.get(chat_id, reader.client_id)
    if chat is None or chat.generation_id is None:
        return Response(status_code=204)
    if await state.generations.get(chat.generation_id) is None:
        return Response(status_code=204)
    return replay_reply(request, reader.request_id, chat.generation_id)


@router.delete("/api/chat/{chat_id}/stream", status_code=204)
async def stop(chat_id: ChatId, request: Request, reader: ReaderContext) -> Response:
    """Stop the chat's reply: the producer ends it (with `abort`) and closes the provider's."""
    state = request.app.state
    chat = state.chats.get(chat_id, reader.client_id)
    if chat is not None and chat.generation_id is not None:
        await state.generations.request_stop(chat.generation_id)
    return Response(status_code=204)


@router.get("/api/chat/{chat_id}")
async def messages(chat_id: ChatId, request: Request, reader: ReaderContext) -> dict[str, Any]:
    """`{"id", "messages"}`: what a reloaded page shows before it resumes."""
    state = request.app.state
    found = await history(state.generations, state.chats, chat_id, reader.client_id)
    return {"id": chat_id, "messages": found}
