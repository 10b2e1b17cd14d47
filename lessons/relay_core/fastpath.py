"""The fast path: Chat Completions read off the wire, without the SDK's models.

The SDK spends most of a relay's CPU: per request it builds a client request, validates options
and wraps the response; per chunk it decodes SSE, parses JSON and builds pydantic models the relay
reads three fields of. This path posts the same request with a plain HTTP client, splits the
event stream itself, parses each `data:` line with orjson and takes only what the relay sends on.
Everything after the adapter is the core's, so it keeps every guarantee: the error contract, the
deadlines, the keep-alives, the closing of the upstream, the end marker check.

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

import httpx
import orjson

from lessons.relay_core.errors import ErrorCode, ProviderHTTPError, StreamFailed
from lessons.relay_core.events import Batch, Finish, StreamItem, Token, ToolCallDelta, Usage
from lessons.relay_core.settings import RelaySettings

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"


def fast_openai_client(
    settings: RelaySettings, *, max_connections: int = 1_000
) -> httpx.AsyncClient:
    """An HTTP client for the Chat Completions endpoint, configured from the SDK's variables."""
    base_url = os.environ.get("OPENAI_BASE_URL", OPENAI_DEFAULT_BASE).rstrip("/")
    key = os.environ.get("OPENAI_API_KEY", "")
    if not key:
        raise RuntimeError("OPENAI_API_KEY is not set")
    read_s = max(settings.first_token_timeout_s, settings.idle_timeout_s, settings.open_timeout_s)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(read_s + 5, connect=5.0),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=100),
    )


async def open_chat_completion(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST a streaming Chat Completions request; return once the provider has answered 200.

    A non-2xx answer is read (it is small) and raised as ProviderHTTPError, which the error
    contract maps like the SDK's errors.
    """
    request = client.build_request("POST", "/chat/completions", json={**body, "stream": True})
    response = await client.send(request, stream=True)
    if response.status_code != 200:
        try:
            await response.aread()
            detail: object = response.json()
        except (ValueError, httpx.HTTPError):
            detail = response.text[:500]
        finally:
            await response.aclose()
        raise ProviderHTTPError(response.status_code, dict(response.headers), detail)
    return response


def _chunk_items(chunk: dict[str, Any], items: list[StreamItem]) -> None:
    if "error" in chunk:
        error = chunk["error"] if isinstance(chunk["error"], dict) else {}
        kind = str(error.get("type") or error.get("code") or "")
        code = ErrorCode.PROVIDER_OVERLOADED if "overloaded" in kind else ErrorCode.PROVIDER_ERROR
        raise StreamFailed(code, f"mid-stream error from the provider: {kind or 'unknown'}")
    usage = chunk.get("usage")
    if usage:
        items.append(Usage(usage["prompt_tokens"], usage["completion_tokens"]))
    for choice in chunk.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            items.append(Token(content))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append(
                ToolCallDelta(
                    call.get("index", 0),
                    call.get("id"),
                    function.get("name"),
                    function.get("arguments") or "",
                )
            )
        if choice.get("finish_reason"):
            items.append(Finish(choice["finish_reason"]))


async def fast_chat_events(response: httpx.Response) -> AsyncIterator[Batch]:
    """The provider's event stream -> one Batch of items per network read."""
    pending = b""
    async for data in response.aiter_raw():
        pending += data
        # Complete lines only; the rest waits for the next read. SSE lines end with \n (the
        # providers send \n; a \r\n line still parses: JSON ignores the trailing \r).
        *lines, pending = pending.split(b"\n")
        items: list[StreamItem] = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank lines, comments, `event:` names (Chat Completions has none)
            payload = line[5:].strip()
            if payload == b"[DONE]" or not payload:
                continue
            _chunk_items(orjson.loads(payload), items)
        if items:
            yield Batch(tuple(items))
