"""The Anthropic Messages dialect: `POST /v1/messages`, streaming and not."""

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from lessons.mock_providers.conversation import BadRequest, Conversation, ToolSpec, content_text
from lessons.mock_providers.replies import ToolCall
from lessons.mock_providers.wire import (
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    ErrorKind,
    ErrorResponse,
    Headers,
    IdSource,
    ReplyContext,
    StreamEvent,
    call_ids,
    dumps,
    dumps_str,
    header_list,
)

# A provider-internal detail the real API sends in headers and rate-limit messages. A lesson app
# must never pass it on to its own clients; tests look for this exact string.
ANTHROPIC_ORGANIZATION = "9c1e7a3b-2c1d-4e0f-8a6b-0mock0000001"

_RATE_LIMIT_HEADERS = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "399950",
    "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:01Z",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "80000",
    "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:01Z",
}

# (error.type, message) of the real API's error for a status.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        f"This request would exceed the rate limit for your organization "
        f"({ANTHROPIC_ORGANIZATION}) of 50,000 input tokens per minute. For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
        "current usage. Please reduce the prompt length or the maximum tokens requested, or try "
        "again later. You may also contact sales at https://www.anthropic.com/contact-sales to "
        "discuss your options for a rate limit increase.",
    ),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}

_STREAM_ERRORS: dict[str, tuple[str, str]] = {
    "overloaded": ("overloaded_error", "Overloaded"),
    "server_error": ("api_error", "Internal server error"),
}

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


class Messages:
    endpoint = "messages"
    provider = "anthropic"

    def request_id(self, ids: IdSource) -> str:
        return ids.base58("req_011C", 20)

    def invalid_json(self, detail: str) -> BadRequest:
        return BadRequest(f"The request body is not valid JSON: {detail}")

    def parse(self, body: dict[str, Any]) -> Conversation:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise BadRequest("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise BadRequest("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise BadRequest("max_tokens: Input should be greater than or equal to 1")
        messages = body.get("messages")
        if messages is None:
            raise BadRequest("messages: Field required")
        if not isinstance(messages, list):
            raise BadRequest("messages: Input should be a valid list")
        if not messages:
            raise BadRequest("messages: at least one message is required")
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise BadRequest(f"messages.{index}: Input should be a valid dictionary")
            if message.get("role") not in ("user", "assistant"):
                raise BadRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        system = content_text(body.get("system"))
        texts = ([system] if system else []) + [content_text(m.get("content")) for m in messages]
        user_texts = [_user_text(m.get("content")) for m in messages if m.get("role") == "user"]
        thinking = body.get("thinking")
        return Conversation(
            provider=self.provider,
            model=model,
            stream=body.get("stream") is True,
            message_texts=texts,
            prompt=next((text for text in reversed(user_texts) if text), ""),
            max_tokens=max_tokens,
            tools=_tools(body.get("tools")),
            tool_choice=_tool_choice(body.get("tool_choice")),
            tool_result=_tool_result(messages[-1]),
            thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
            tool_results=_tool_results(messages[-1]),
            parallel_tool_calls=not _parallel_disabled(body.get("tool_choice")),
        )

    def observed(self, body: dict[str, Any]) -> tuple[Any, Any]:
        return body.get("messages"), body.get("system")

    def success_headers(self, ctx: ReplyContext, stream: bool) -> Headers:
        return header_list(
            {
                "content-type": (SSE_CONTENT_TYPE if stream else JSON_CONTENT_TYPE).decode(),
                "cache-control": "no-cache",
                "request-id": ctx.request_id,
                "anthropic-organization-id": ANTHROPIC_ORGANIZATION,
                **_RATE_LIMIT_HEADERS,
            }
        )

    def stream_events(self, ctx: ReplyContext) -> Iterator[StreamEvent]:
        reply = ctx.reply
        message = _message(ctx, content=[], stop_reason=None, output_tokens=1)
        yield _event({"type": "message_start", "message": message}), 0
        for index, block in enumerate(_blocks(ctx)):
            yield _event({"type": "content_block_start", "index": index, "content_block": block}), 0
            if index == 0:
                # Recorded streams carry a ping right after the first block opens.
                yield _PING, 0
            yield from _block_deltas(ctx, index, block)
            yield _event({"type": "content_block_stop", "index": index}), 0
        usage = {
            "input_tokens": ctx.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            # Cumulative, not an increment: the SDK overwrites rather than adds.
            "output_tokens": reply.output_tokens,
        }
        delta = {"stop_reason": _stop_reason(ctx), "stop_sequence": None}
        yield _event({"type": "message_delta", "delta": delta, "usage": usage}), 0
        yield _event({"type": "message_stop"}), 0

    def stream_error(self, ctx: ReplyContext, kind: ErrorKind, events_sent: int) -> bytes:
        # The SDK raises APIStatusError (status 200) and reads nothing after it.
        error_type, message = _STREAM_ERRORS[kind]
        return _event({"type": "error", "error": {"type": error_type, "message": message}})

    def body(self, ctx: ReplyContext) -> bytes:
        content = []
        for block in _blocks(ctx):
            if block["type"] == "thinking":
                block = {**block, "thinking": "".join(ctx.reply.thinking)}
            elif block["type"] == "text":
                block = {**block, "text": ctx.reply.full_text}
            elif block["type"] == "tool_use":
                block = {**block, "input": _tool_input(_call_of(ctx, block))}
            content.append(block)
        message = _message(
            ctx,
            content=content,
            stop_reason=_stop_reason(ctx),
            output_tokens=ctx.reply.output_tokens,
        )
        return dumps(message).encode()

    def http_error(
        self,
        status: int,
        request_id: str,
        *,
        model: str | None,
        api_key: str | None,
        retry_after: float | None,
        should_retry: bool,
    ) -> ErrorResponse:
        error_type, message = _ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        if status == 404 and model:
            message = f"model: {model}"
        headers = {"anthropic-organization-id": ANTHROPIC_ORGANIZATION}
        if status == 429:
            headers.update(
                {**_RATE_LIMIT_HEADERS, "anthropic-ratelimit-input-tokens-remaining": "0"}
            )
        if retry_after is not None:
            headers["retry-after"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
        # The real API tells the SDK whether to retry; a scripted error says no unless asked,
        # so that the SDK neither uses up a rule by surprise nor sleeps through backoff.
        if not should_retry:
            headers["x-should-retry"] = "false"
        return _error_response(status, request_id, error_type, message, headers)

    def overload_status(self, kind: ErrorKind) -> int:
        return 529 if kind == "overloaded" else 500

    def bad_request(self, error: BadRequest, request_id: str) -> ErrorResponse:
        headers = {"x-should-retry": "false"}
        return _error_response(400, request_id, "invalid_request_error", error.message, headers)

    def not_found(self, method: str, path: str, request_id: str) -> ErrorResponse:
        return _error_response(404, request_id, "not_found_error", "Not Found", {})


def _error_response(
    status: int, request_id: str, error_type: str, message: str, headers: dict[str, str]
) -> ErrorResponse:
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
    all_headers = {
        "content-type": JSON_CONTENT_TYPE.decode(),
        "request-id": request_id,
        **headers,
    }
    return ErrorResponse(status, header_list(all_headers), dumps(body).encode())


def _event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {dumps(payload)}\n\n".encode()


def _user_text(content: Any) -> str:
    # The prompt is what the user typed, not the tool results a user turn may carry.
    if isinstance(content, list):
        content = [
            block
            for block in content
            if not (isinstance(block, dict) and block.get("type") == "tool_result")
        ]
    return content_text(content)


def _tool_result(message: dict[str, Any]) -> str | None:
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return None
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            return content_text(block.get("content"))
    return None


def _tool_results(message: dict[str, Any]) -> tuple[str, ...]:
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return ()
    return tuple(
        content_text(block.get("content"))
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    )


def _parallel_disabled(value: Any) -> bool:
    return isinstance(value, dict) and value.get("disable_parallel_tool_use") is True


def _tools(value: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(value, list):
        return ()
    # Server tools (web search and the like) have no input_schema; the mock never calls them.
    return tuple(
        ToolSpec(tool["name"], tool["input_schema"])
        for tool in value
        if isinstance(tool, dict)
        and isinstance(tool.get("name"), str)
        and isinstance(tool.get("input_schema"), dict)
    )


def _tool_choice(value: Any) -> str:
    if not isinstance(value, dict):
        return "auto"
    kind = value.get("type")
    if kind == "tool" and isinstance(value.get("name"), str):
        return value["name"]
    if kind == "any":
        return "required"
    return "none" if kind == "none" else "auto"


def _message(
    ctx: ReplyContext, content: list[Any], stop_reason: str | None, output_tokens: int
) -> dict[str, Any]:
    return {
        "id": ctx.ids.base58("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": ctx.conversation.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": ctx.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def _blocks(ctx: ReplyContext) -> list[dict[str, Any]]:
    """The reply's content blocks, empty, as content_block_start announces them."""
    reply = ctx.reply
    blocks: list[dict[str, Any]] = []
    if reply.thinking:
        blocks.append({"type": "thinking", "thinking": "", "signature": ""})
    if reply.text or reply.tool_call is None:
        blocks.append({"type": "text", "text": ""})
    for index, call in enumerate(reply.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": call_ids(ctx.ids, index).base58("toolu_01", 22),
                "name": call.name,
                "input": {},
            }
        )
    return blocks


def _call_of(ctx: ReplyContext, block: dict[str, Any]) -> ToolCall:
    """The tool call a tool_use block carries (blocks and calls are in the same order)."""
    ids = [b["id"] for b in _blocks(ctx) if b["type"] == "tool_use"]
    return ctx.reply.tool_calls[ids.index(block["id"])]


def _block_deltas(ctx: ReplyContext, index: int, block: dict[str, Any]) -> Iterator[StreamEvent]:
    reply = ctx.reply

    def delta(body: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": index, "delta": body})

    if block["type"] == "thinking":
        for piece in reply.thinking:
            yield delta({"type": "thinking_delta", "thinking": piece}), 1
        yield delta({"type": "signature_delta", "signature": _signature(ctx)}), 0
    elif block["type"] == "text":
        # Text deltas are most of the stream: encode around a fixed prefix, for speed.
        prefix = (
            "event: content_block_delta\n"
            f'data: {{"type":"content_block_delta","index":{index},'
            '"delta":{"type":"text_delta","text":'
        ).encode()
        for piece in reply.text:
            yield prefix + dumps_str(piece).encode() + b"}}\n\n", 1
    else:
        # Recorded tool streams open with an empty fragment, which carries no token.
        yield delta({"type": "input_json_delta", "partial_json": ""}), 0
        for fragment in _call_of(ctx, block).fragments:
            yield delta({"type": "input_json_delta", "partial_json": fragment}), 1


def _signature(ctx: ReplyContext) -> str:
    # Opaque to clients, like the real one: a relay must pass it through, never read it.
    digests = (
        hashlib.sha256(f"{ctx.ids.seed}/{ctx.ids.number}/signature/{part}".encode()).digest()
        for part in range(3)
    )
    return base64.b64encode(b"".join(digests)).decode()


def _tool_input(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments)
    except ValueError:
        # max_tokens cut the arguments: the real API then returns what parsed, here nothing.
        return {}


def _stop_reason(ctx: ReplyContext) -> str:
    if ctx.reply.truncated:
        return "max_tokens"
    if ctx.reply.tool_calls:
        return "tool_use"
    return "end_turn"
