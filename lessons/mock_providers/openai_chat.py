"""The OpenAI Chat Completions dialect: `POST /v1/chat/completions`, streaming and not."""

from collections.abc import Iterator
from typing import Any

from lessons.mock_providers.conversation import BadRequest, Conversation, content_text
from lessons.mock_providers.openai_common import (
    OpenAIDialectBase,
    function_tools,
    optional_int,
    require_array,
    require_model,
    stream_error_payload,
    tool_choice,
)
from lessons.mock_providers.wire import (
    ErrorKind,
    ReplyContext,
    StreamEvent,
    call_ids,
    dumps,
    dumps_str,
    sse,
)

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_SYSTEM_FINGERPRINT = "fp_mock0001"
_DONE = b"data: [DONE]\n\n"


class ChatCompletions(OpenAIDialectBase):
    endpoint = "chat.completions"

    def parse(self, body: dict[str, Any]) -> Conversation:
        model = require_model(body)
        messages = require_array(body, "messages")
        for index, message in enumerate(messages):
            _check_message(message, index)
        # `max_completion_tokens` replaced `max_tokens`; the SDKs still send either.
        max_tokens = optional_int(body, "max_completion_tokens", 1)
        if max_tokens is None:
            max_tokens = optional_int(body, "max_tokens", 1)
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )
        last = messages[-1]
        tool_result = content_text(last.get("content")) if last.get("role") == "tool" else None
        trailing_results: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing_results.insert(0, content_text(message.get("content")))
        user_texts = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        return Conversation(
            provider=self.provider,
            model=model,
            stream=body.get("stream") is True,
            message_texts=[content_text(m.get("content")) for m in messages],
            prompt=user_texts[-1] if user_texts else "",
            max_tokens=max_tokens,
            include_usage=include_usage,
            tools=function_tools(body.get("tools"), nested=True),
            tool_choice=tool_choice(body.get("tool_choice", "auto")),
            tool_result=tool_result,
            tool_results=tuple(trailing_results),
            parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        )

    def observed(self, body: dict[str, Any]) -> tuple[Any, Any]:
        messages = body.get("messages")
        system = None
        if isinstance(messages, list):
            system_texts = [
                content_text(m.get("content"))
                for m in messages
                if isinstance(m, dict) and m.get("role") in ("system", "developer")
            ]
            system = "\n".join(system_texts) if system_texts else None
        return messages, system

    def stream_events(self, ctx: ReplyContext) -> Iterator[StreamEvent]:
        reply = ctx.reply
        include_usage = ctx.conversation.include_usage
        # Every chunk shares this envelope; only the delta and finish_reason change. Building
        # the bytes around a pre-encoded prefix keeps the mock far faster than any relay.
        envelope = dumps(
            {
                "id": _completion_id(ctx),
                "object": "chat.completion.chunk",
                "created": ctx.created,
                "model": ctx.conversation.model,
                "service_tier": "default",
                "system_fingerprint": _SYSTEM_FINGERPRINT,
            }
        )[:-1]
        prefix = f'data: {envelope},"choices":[{{"index":0,"delta":'.encode()
        usage_null = ',"usage":null' if include_usage else ""
        suffix = f',"logprobs":null,"finish_reason":null}}]{usage_null}}}\n\n'.encode()

        def chunk(delta: dict[str, Any]) -> bytes:
            return prefix + dumps(delta).encode() + suffix

        calls = reply.tool_calls
        role_delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if calls and not reply.text:
            # A tool-calling reply opens with its first tool_calls element in the role chunk.
            role_delta["content"] = None
            role_delta["tool_calls"] = [_first_tool_delta(ctx, 0)]
            yield chunk(role_delta), 0
        else:
            yield chunk(role_delta), 0
            for piece in reply.text:
                yield prefix + _content(piece) + suffix, 1
            if calls:
                yield chunk({"tool_calls": [_first_tool_delta(ctx, 0)]}), 0
        for index, fragment in _fragments_in_order(ctx):
            if fragment is None:
                # The first piece of a later call: its id and name.
                yield chunk({"tool_calls": [_first_tool_delta(ctx, index)]}), 0
                continue
            arguments = {"index": index, "function": {"arguments": fragment}}
            yield chunk({"tool_calls": [arguments]}), 1

        finish = dumps(
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": _finish_reason(ctx)}
        )
        yield f'data: {envelope},"choices":[{finish}]{usage_null}}}\n\n'.encode(), 0
        if include_usage:
            usage = dumps(_usage(ctx))
            yield f'data: {envelope},"choices":[],"usage":{usage}}}\n\n'.encode(), 0
        yield _DONE, 0

    def stream_error(self, ctx: ReplyContext, kind: ErrorKind, events_sent: int) -> bytes:
        # The SDK raises openai.APIError on any data object with an "error" key; nothing follows.
        return sse(dumps({"error": stream_error_payload(kind)}))

    def body(self, ctx: ReplyContext) -> bytes:
        reply = ctx.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.full_text or None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": _call_id(ctx, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for index, call in enumerate(reply.tool_calls)
            ]
        completion = {
            "id": _completion_id(ctx),
            "object": "chat.completion",
            "created": ctx.created,
            "model": ctx.conversation.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(ctx),
                }
            ],
            "usage": _usage(ctx),
            "service_tier": "default",
            "system_fingerprint": _SYSTEM_FINGERPRINT,
        }
        return dumps(completion).encode()


def _check_message(message: Any, index: int) -> None:
    if not isinstance(message, dict):
        raise BadRequest(
            f"Invalid type for 'messages[{index}]': expected an object, but got another type "
            "instead.",
            param=f"messages[{index}]",
            code="invalid_type",
        )
    role = message.get("role")
    if role is None:
        raise BadRequest(
            f"Missing required parameter: 'messages[{index}].role'.",
            param=f"messages[{index}].role",
            code="missing_required_parameter",
        )
    if role not in _ROLES:
        raise BadRequest(
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
            "'function', 'tool', and 'developer'.",
            param=f"messages[{index}].role",
            code="invalid_value",
        )


def _content(piece: str) -> bytes:
    return f'{{"content":{dumps_str(piece)}}}'.encode()


def _completion_id(ctx: ReplyContext) -> str:
    return ctx.ids.make("chatcmpl-", 29)


def _call_id(ctx: ReplyContext, index: int = 0) -> str:
    return call_ids(ctx.ids, index).make("call_", 24)


def _first_tool_delta(ctx: ReplyContext, index: int) -> dict[str, Any]:
    call = ctx.reply.tool_calls[index]
    return {
        "index": index,
        "id": _call_id(ctx, index),
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }


def _fragments_in_order(ctx: ReplyContext) -> Iterator[tuple[int, str | None]]:
    """(call index, argument fragment) in wire order; None marks where a later call starts.

    Real streams send parallel calls one after the other; `interleave_tool_calls` (a scripted
    rule) sends every call's first piece, then their fragments in turn, as some servers do.
    """
    calls = ctx.reply.tool_calls
    if not ctx.interleave_tool_calls:
        for index, call in enumerate(calls):
            if index:
                yield index, None
            for fragment in call.fragments:
                yield index, fragment
        return
    for index in range(1, len(calls)):
        yield index, None
    longest = max((len(call.fragments) for call in calls), default=0)
    for position in range(longest):
        for index, call in enumerate(calls):
            if position < len(call.fragments):
                yield index, call.fragments[position]


def _finish_reason(ctx: ReplyContext) -> str:
    if ctx.reply.truncated:
        return "length"
    if ctx.reply.tool_calls:
        return "tool_calls"
    return "stop"


def _usage(ctx: ReplyContext) -> dict[str, Any]:
    output_tokens = ctx.reply.output_tokens
    return {
        "prompt_tokens": ctx.input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": ctx.input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
