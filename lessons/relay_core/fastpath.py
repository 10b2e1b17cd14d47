"""The fast path: Chat Completions read off the wire, without the SDK's models.

The SDK spends most of a relay's CPU: per request it builds a client request, validates options
and wraps the response; per chunk it decodes SSE, parses JSON and builds pydantic models the relay
reads three fields of. This path posts the same request with aiohttp (whose C parser reads a
response for about a third of httpx's CPU, measured in notebook 09), splits the event stream
itself, parses each `data:` line with orjson and takes only what the relay sends on. Everything
after the adapter is the core's, so it keeps every guarantee: the error contract, the deadlines,
the keep-alives, the closing of the upstream, the end marker check.

It also coalesces: the items parsed from one network read are yielded as one `Batch`, which the
core writes in one send. A client that reads slowly makes the relay read the provider less often,
so more events arrive per read and go out in fewer, larger writes; a fast client gets each event
as soon as it arrives (no timer, no added delay).

What it costs you, and why it is not the default: no types (a field the provider renames breaks
it silently, where the SDK would fail loudly or keep working), no retries (the SDK retries 429 and
5xx twice before the first token), and every future protocol change is yours to follow. Notebook
09 measures what it buys.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from lessons.relay_core.clients import sdk_timeout
from lessons.relay_core.errors import ErrorCode, ProviderHTTPError, StreamFailed
from lessons.relay_core.events import Batch, Finish, StreamItem, Token, ToolCallDelta, Usage
from lessons.relay_core.settings import RelaySettings

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"


class ChatCompletionsClient:
    """A pooled HTTP client for one Chat Completions endpoint, configured from the SDK's
    variables (`OPENAI_BASE_URL`, `OPENAI_API_KEY`). Create it on the server's loop (in the
    lifespan); `aclose()` it at shutdown."""

    def __init__(self, settings: RelaySettings, *, max_connections: int = 1_000) -> None:
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise RuntimeError("OPENAI_API_KEY is not set")
        base_url = os.environ.get("OPENAI_BASE_URL", OPENAI_DEFAULT_BASE).rstrip("/")
        self.url = f"{base_url}/chat/completions"
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            # Each read's timeout is above the relay's own deadlines, which decide.
            timeout=aiohttp.ClientTimeout(sock_connect=5.0, sock_read=sdk_timeout(settings)),
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections),
            # Like the SDK (httpx): HTTPS_PROXY and NO_PROXY from the environment apply.
            trust_env=True,
        )

    async def aclose(self) -> None:
        await self.session.close()


async def open_chat_completion(
    client: ChatCompletionsClient, body: dict[str, Any]
) -> aiohttp.ClientResponse:
    """POST a streaming Chat Completions request; return once the provider has answered 200.

    A non-2xx answer is read (it is small) and raised as ProviderHTTPError, which the error
    contract maps like the SDK's errors.
    """
    response = await client.session.post(client.url, data=orjson.dumps({**body, "stream": True}))
    if response.status != 200:
        headers = {name.lower(): value for name, value in response.headers.items()}
        try:
            raw = await response.read()
            detail: object = orjson.loads(raw)
        except (ValueError, aiohttp.ClientError):
            detail = "(an unreadable error body)"
        finally:
            response.close()
        raise ProviderHTTPError(response.status, headers, detail)
    return response


def _chunk_items(chunk: dict[str, Any], items: list[StreamItem]) -> None:
    """What one Chat Completions chunk means for the relay. Written for the common case: a
    chunk with one choice whose delta has some content, looked up in as few steps as it takes."""
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        if choice.get("index", 0) == 0:  # a request with n > 1 relays the first choice only
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    items.append(Token(content))
                if "tool_calls" in delta:
                    _tool_calls(delta["tool_calls"], items)
            reason = choice.get("finish_reason")
            if reason:
                items.append(Finish(reason))
    usage = chunk.get("usage")
    if usage:
        items.append(Usage(usage["prompt_tokens"], usage["completion_tokens"]))
    if "error" in chunk:
        error = chunk["error"] if isinstance(chunk["error"], dict) else {}
        kind = str(error.get("type") or error.get("code") or "")
        code = ErrorCode.PROVIDER_OVERLOADED if "overloaded" in kind else ErrorCode.PROVIDER_ERROR
        raise StreamFailed(code, f"mid-stream error from the provider: {kind or 'unknown'}")


def _tool_calls(calls: list[dict[str, Any]] | None, items: list[StreamItem]) -> None:
    for call in calls or ():
        function = call.get("function") or {}
        items.append(
            ToolCallDelta(
                call.get("index", 0), call.get("id"), function.get("name"),
                function.get("arguments") or "",
            )
        )  # fmt: skip


async def fast_chat_events(response: aiohttp.ClientResponse) -> AsyncIterator[Batch]:
    """The provider's event stream -> one Batch of items per network read."""
    pending = b""
    loads = orjson.loads
    async for data in response.content.iter_any():
        # Complete lines only; the rest waits for the next read. SSE lines end with \n (the
        # providers send \n; a \r\n line still parses: JSON ignores the trailing \r).
        *lines, pending = (pending + data).split(b"\n")
        items: list[StreamItem] = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank lines, comments, `event:` names (Chat Completions has none)
            payload = line[5:]
            if payload == b" [DONE]" or payload == b"[DONE]" or not payload.strip():
                continue
            _chunk_items(loads(payload), items)
        if items:
            yield Batch(tuple(items))
