"""The OpenAI Responses dialect: `POST /v1/responses`, streaming and not."""

from collections.abc import Iterator
from typing import Any

from lessons.mock_providers.conversation import BadRequest, Conversation, content_text
from lessons.mock_providers.openai_common import (
    OpenAIDialectBase,
    function_tools,
    optional_int,
    require_model,
    stream_error_payload,
    tool_choice,
)
from lessons.mock_providers.replies import ToolCall
from lessons.mock_providers.wire import (
    ErrorKind,
    ReplyContext,
    StreamEvent,
    call_ids,
    dumps,
    dumps_str,
)

# The real API refuses smaller output budgets.
_MIN_OUTPUT_TOKENS = 16


class Responses(OpenAIDialectBase):
    endpoint = "responses"

    def parse(self, body: dict[str, Any]) -> Conversation:
        model = require_model(body)
        items = _input_items(body)
        instructions = body.get("instructions")
        texts = [instructions] if isinstance(instructions, str) else []
        texts.extend(_item_text(item) for item in items)
        user_texts = [_item_text(item) for item in items if item.get("role") == "user"]
        last = items[-1]
        tool_result = None
        if last.get("type") == "function_call_output":
            tool_result = content_text(last.get("output"))
        trailing_results: list[str] = []
        for item in reversed(items):
            if item.get("type") != "function_call_output":
                break
            trailing_results.insert(0, content_text(item.get("output")))
        reasoning = body.get("reasoning")
        return Conversation(
            provider=self.provider,
            model=model,
            stream=body.get("stream") is True,
            message_texts=texts,
            prompt=user_texts[-1] if user_texts else "",
            max_tokens=optional_int(body, "max_output_tokens", _MIN_OUTPUT_TOKENS),
            tools=function_tools(body.get("tools"), nested=False),
            tool_choice=tool_choice(body.get("tool_choice", "auto")),
            tool_result=tool_result,
            tool_results=tuple(trailing_results),
            parallel_tool_calls=body.get("parallel_tool_calls") is not False,
            # Reasoning models stream a readable summary of their reasoning only when asked.
            thinking=isinstance(reasoning, dict) and reasoning.get("summary") is not None,
        )

    def observed(self, body: dict[str, Any]) -> tuple[Any, Any]:
        return body.get("input"), body.get("instructions")

    def stream_events(self, ctx: ReplyContext) -> Iterator[StreamEvent]:
        events = _Sequence()
        yield events.event(
            {"type": "response.created", "response": _response(ctx, "in_progress", [])}
        )
        yield events.event(
            {"type": "response.in_progress", "response": _response(ctx, "in_progress", [])}
        )
        output = _output_items(ctx)
        calls = [
            (index, item) for index, item in enumerate(output) if item["type"] == "function_call"
        ]
        for output_index, item in enumerate(output):
            if item["type"] == "reasoning":
                yield from _reasoning_events(ctx, events, item, output_index)
            elif item["type"] == "message":
                yield from _message_events(ctx, events, item, output_index)
            elif not ctx.interleave_tool_calls:
                yield from _function_call_events(ctx, events, item, output_index)
        if ctx.interleave_tool_calls:
            yield from _interleaved_call_events(ctx, events, calls)
        status = "incomplete" if ctx.reply.truncated else "completed"
        yield events.event(
            {
                "type": f"response.{status}",
                "response": _response(ctx, status, output, usage=_usage(ctx)),
            }
        )

    def stream_error(self, ctx: ReplyContext, kind: ErrorKind, events_sent: int) -> bytes:
        # Production sends the error nested (which makes the SDK raise openai.APIError), then a
        # response.failed that the SDK never reaches.
        error = stream_error_payload(kind)
        error["code"] = error["type"]
        failed = _response(ctx, "failed", [])
        failed["error"] = {"code": error["code"], "message": error["message"]}
        return _event({"type": "error", "sequence_number": events_sent, "error": error}) + _event(
            {"type": "response.failed", "response": failed, "sequence_number": events_sent + 1}
        )

    def body(self, ctx: ReplyContext) -> bytes:
        status = "incomplete" if ctx.reply.truncated else "completed"
        return dumps(_response(ctx, status, _output_items(ctx), usage=_usage(ctx))).encode()


def _event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {dumps(payload)}\n\n".encode()


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("input")
    if value is None:
        raise BadRequest(
            "Missing required parameter: 'input'.",
            param="input",
            code="missing_required_parameter",
        )
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise BadRequest(
            "Invalid type for 'input': expected one of a string or an array of input items.",
            param="input",
            code="invalid_type",
        )
    if not value:
        raise BadRequest(
            "Invalid 'input': empty array. Expected an array with minimum length 1, but got an "
            "empty array instead.",
            param="input",
            code="empty_array",
        )
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRequest(
                f"Invalid type for 'input[{index}]': expected an input item object.",
                param=f"input[{index}]",
                code="invalid_type",
            )
    return value


def _item_text(item: dict[str, Any]) -> str:
    if item.get("type") == "function_call_output":
        return content_text(item.get("output"))
    if item.get("type") == "function_call":
        return str(item.get("arguments", ""))
    return content_text(item.get("content"))


def _message_id(ctx: ReplyContext) -> str:
    return ctx.ids.hex("msg_", 50)


def _output_items(ctx: ReplyContext) -> list[dict[str, Any]]:
    """The response's final output: a message (when there is text) and a function call."""
    reply = ctx.reply
    item_status = "incomplete" if reply.truncated else "completed"
    items: list[dict[str, Any]] = []
    if reply.thinking:
        summary = [{"type": "summary_text", "text": "".join(reply.thinking)}]
        items.append({"id": ctx.ids.hex("rs_", 50), "type": "reasoning", "summary": summary})
    if reply.text or reply.tool_call is None:
        items.append(
            {
                "id": _message_id(ctx),
                "type": "message",
                "status": item_status,
                "content": [_text_part(reply.full_text)],
                "role": "assistant",
            }
        )
    for index, call in enumerate(reply.tool_calls):
        ids = call_ids(ctx.ids, index)
        items.append(
            {
                "id": ids.hex("fc_", 50),
                "type": "function_call",
                "status": item_status,
                "arguments": call.arguments,
                "call_id": ids.make("call_", 24),
                "name": call.name,
            }
        )
    return items


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


class _Sequence:
    """Numbers the stream's events: `sequence_number` is each event's position, from 0."""

    def __init__(self) -> None:
        self.next = 0

    def event(self, payload: dict[str, Any], tokens: int = 0) -> StreamEvent:
        payload["sequence_number"] = self.next
        self.next += 1
        return _event(payload), tokens

    def text_delta(self, prefix: str, piece: str) -> StreamEvent:
        # Text deltas are most of the stream: encoded around a fixed prefix, for speed, into
        # the same bytes that event() would produce.
        data = f'{prefix}{dumps_str(piece)},"logprobs":[],"sequence_number":{self.next}}}\n\n'
        self.next += 1
        return data.encode(), 1


def _message_events(
    ctx: ReplyContext, events: _Sequence, item: dict[str, Any], output_index: int
) -> Iterator[StreamEvent]:
    item_id = item["id"]
    where = {"item_id": item_id, "output_index": output_index, "content_index": 0}
    yield events.event(
        {
            "type": "response.output_item.added",
            "item": {**item, "status": "in_progress", "content": []},
            "output_index": output_index,
        }
    )
    yield events.event({"type": "response.content_part.added", **where, "part": _text_part("")})
    prefix = (
        "event: response.output_text.delta\n"
        f'data: {{"type":"response.output_text.delta","item_id":"{item_id}",'
        f'"output_index":{output_index},"content_index":0,"delta":'
    )
    for piece in ctx.reply.text:
        yield events.text_delta(prefix, piece)
    text = ctx.reply.full_text
    yield events.event({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
    yield events.event({"type": "response.content_part.done", **where, "part": _text_part(text)})
    yield events.event(
        {"type": "response.output_item.done", "item": item, "output_index": output_index}
    )


def _function_call_events(
    ctx: ReplyContext, events: _Sequence, item: dict[str, Any], output_index: int
) -> Iterator[StreamEvent]:
    yield _call_added(events, item, output_index)
    for fragment in _call_of(ctx, item).fragments:
        yield _call_delta(events, item, output_index, fragment)
    yield from _call_done(events, item, output_index)


def _interleaved_call_events(
    ctx: ReplyContext, events: _Sequence, calls: list[tuple[int, dict[str, Any]]]
) -> Iterator[StreamEvent]:
    """Parallel calls with their argument deltas interleaved (a scripted rule's option)."""
    for output_index, item in calls:
        yield _call_added(events, item, output_index)
    fragments = [_call_of(ctx, item).fragments for _, item in calls]
    for position in range(max(map(len, fragments), default=0)):
        for (output_index, item), pieces in zip(calls, fragments, strict=True):
            if position < len(pieces):
                yield _call_delta(events, item, output_index, pieces[position])
    for output_index, item in calls:
        yield from _call_done(events, item, output_index)


def _call_of(ctx: ReplyContext, item: dict[str, Any]) -> ToolCall:
    calls = [output for output in _output_items(ctx) if output["type"] == "function_call"]
    return ctx.reply.tool_calls[[c["id"] for c in calls].index(item["id"])]


def _call_added(events: _Sequence, item: dict[str, Any], output_index: int) -> StreamEvent:
    return events.event(
        {
            "type": "response.output_item.added",
            "item": {**item, "status": "in_progress", "arguments": ""},
            "output_index": output_index,
        }
    )


def _call_delta(
    events: _Sequence, item: dict[str, Any], output_index: int, fragment: str
) -> StreamEvent:
    delta = {
        "type": "response.function_call_arguments.delta",
        "item_id": item["id"],
        "output_index": output_index,
        "delta": fragment,
    }
    return events.event(delta, tokens=1)


def _call_done(events: _Sequence, item: dict[str, Any], output_index: int) -> Iterator[StreamEvent]:
    where = {"item_id": item["id"], "output_index": output_index}
    yield events.event(
        {
            "type": "response.function_call_arguments.done",
            **where,
            "name": item["name"],
            "arguments": item["arguments"],
        }
    )
    yield events.event(
        {"type": "response.output_item.done", "item": item, "output_index": output_index}
    )


def _reasoning_events(
    ctx: ReplyContext, events: _Sequence, item: dict[str, Any], output_index: int
) -> Iterator[StreamEvent]:
    """A reasoning item with a readable summary, as reasoning models stream it when the request
    asks for `reasoning: {"summary": ...}`."""
    where = {"item_id": item["id"], "output_index": output_index, "summary_index": 0}
    yield events.event(
        {
            "type": "response.output_item.added",
            "item": {**item, "summary": []},
            "output_index": output_index,
        }
    )
    empty = {"type": "summary_text", "text": ""}
    yield events.event({"type": "response.reasoning_summary_part.added", **where, "part": empty})
    for piece in ctx.reply.thinking:
        delta = {"type": "response.reasoning_summary_text.delta", **where, "delta": piece}
        yield events.event(delta, tokens=1)
    text = "".join(ctx.reply.thinking)
    yield events.event({"type": "response.reasoning_summary_text.done", **where, "text": text})
    part = {"type": "summary_text", "text": text}
    yield events.event({"type": "response.reasoning_summary_part.done", **where, "part": part})
    yield events.event(
        {"type": "response.output_item.done", "item": item, "output_index": output_index}
    )


def _response(
    ctx: ReplyContext,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = ctx.body
    finished = status in ("completed", "incomplete")
    tools = body.get("tools")
    return {
        "id": ctx.ids.hex("resp_", 50),
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "background": False,
        "completed_at": ctx.created if finished else None,
        "error": None,
        "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete" else None),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": ctx.conversation.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": None,
        "reasoning": _reasoning_settings(body),
        "safety_identifier": None,
        "service_tier": "default" if finished else "auto",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _reasoning_settings(body: dict[str, Any]) -> dict[str, Any]:
    asked = body.get("reasoning")
    asked = asked if isinstance(asked, dict) else {}
    return {"effort": asked.get("effort"), "summary": asked.get("summary")}


def _usage(ctx: ReplyContext) -> dict[str, Any]:
    output_tokens = ctx.reply.output_tokens
    return {
        "input_tokens": ctx.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(ctx.reply.thinking)},
        "total_tokens": ctx.input_tokens + output_tokens,
    }
