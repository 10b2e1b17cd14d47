"""One assistant turn with server-side tools: stream a step, run its tool calls, stream the next.

A model that wants a tool ends its step with finish reason `tool_calls`; the server then checks
each call's input, runs the tool, adds the results to the conversation and calls the model again,
until it answers in text, or the turn has used `max_steps` provider calls. The core relays the
items this generator yields and owns the first provider stream; this generator owns (and closes)
every stream it opens after that, and the core closes the generator however the reply ends.

Tool calls arrive in pieces: `ToolCallDelta`s with the call's index among the step's calls, its
id and name on the first piece, argument fragments after. Pieces of parallel calls may come one
call after the other or interleaved, so they are assembled by index, never by arrival order.

Each provider needs its own continuation: the Responses API takes the step's output items back
(a reasoning item goes with the calls it led to) and `function_call_output` items; Anthropic
takes the assistant's content blocks back (thinking blocks with their signatures) and a user turn
of `tool_result` blocks. `OpenAIResponsesTurn` and `AnthropicTurn` each record what they need
while the core's adapter reads the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from lessons.chat_ui.protocol import (
    DataPart,
    StepEnd,
    StepStart,
    ToolInputAvailable,
    ToolInputError,
    ToolOutput,
    ToolOutputError,
    TurnItem,
)
from lessons.chat_ui.tools import ServerTool, Toolbox, ToolFailed
from lessons.relay_core import (
    Finish,
    Token,
    ToolCallDelta,
    Usage,
    anthropic_events,
    openai_responses_events,
)
from lessons.relay_core.events import Reasoning
from lessons.relay_core.stream import close_upstream

logger = logging.getLogger("lessons.chat_ui")


@dataclass(frozen=True)
class TurnLimits:
    max_steps: int = 5  # provider calls in one turn
    tool_timeout_s: float = 5.0


# --- assembling tool calls ---------------------------------------------------------------------


@dataclass
class ToolCall:
    """One tool call of a step, as its pieces arrived."""

    index: int
    id: str | None = None
    name: str | None = None
    fragments: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


class ToolCallAssembler:
    """A step's tool-call pieces -> whole calls, keyed by each call's index."""

    def __init__(self) -> None:
        self.calls: dict[int, ToolCall] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self.calls.setdefault(delta.index, ToolCall(delta.index))
        call.id = call.id or delta.id
        call.name = call.name or delta.name
        call.fragments.append(delta.arguments)

    def finished(self) -> list[ToolCall]:
        return [self.calls[index] for index in sorted(self.calls)]


# --- checking and running one call -------------------------------------------------------------


@dataclass(frozen=True)
class ToolResult:
    """What one call came to: its output, or why it failed (as the client and model see it)."""

    call_id: str
    name: str
    output: Any = None
    error: str | None = None

    def for_model(self) -> str:
        return json.dumps({"error": self.error} if self.error is not None else self.output)


def check_input(call: ToolCall, tool: ServerTool | None) -> tuple[Any, str | None]:
    """(the input as read, None) when valid, else (what could be read of it, why not)."""
    try:
        raw = json.loads(call.arguments or "{}")
    except ValueError:
        return call.arguments, "The tool input is not valid JSON."
    if tool is None:
        return raw, f"There is no tool named {str(call.name)[:64]!r}."
    try:
        tool.input_model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()[:3]
        )
        return raw, f"Invalid input: {problems}"[:500]
    return raw, None


async def run_tool(
    tool: ServerTool, raw_input: Any, call_id: str, limits: TurnLimits
) -> AsyncIterator[DataPart | ToolResult]:
    """Run one tool: its progress reports as data parts as they come, then its result."""
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    args = tool.input_model.model_validate(raw_input)
    task = asyncio.ensure_future(
        asyncio.wait_for(tool.run(args, reports.put_nowait), limits.tool_timeout_s)
    )
    progress_id = f"progress-{call_id}"
    try:
        while True:
            getter = asyncio.ensure_future(reports.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                data = {"toolCallId": call_id, **getter.result()}
                yield DataPart("tool-progress", data, id=progress_id)
                continue
            getter.cancel()
            while not reports.empty():
                data = {"toolCallId": call_id, **reports.get_nowait()}
                yield DataPart("tool-progress", data, id=progress_id)
            break
        try:
            output = task.result()
        except ToolFailed as failed:
            yield ToolResult(call_id, tool.name, error=str(failed))
        except TimeoutError:
            yield ToolResult(call_id, tool.name, error="The tool took too long.")
        except Exception:
            # A bug in the tool: the traceback goes to the log, a fixed text to everyone else.
            logger.exception("tool %s failed", tool.name)
            yield ToolResult(call_id, tool.name, error="The tool failed.")
        else:
            yield ToolResult(call_id, tool.name, output=output)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


# --- the providers' continuations --------------------------------------------------------------


class ProviderTurn(Protocol):
    """How one provider's conversation is opened, read and continued with tool results."""

    provider: str

    def open(self) -> Awaitable[Any]:
        """The call that opens the next step's stream (not yet awaited)."""
        ...

    def events(self, upstream: Any) -> AsyncIterator[Any]:
        """The step's stream as the core's items (recording what the continuation needs)."""
        ...

    def add_results(self, calls: list[ToolCall], results: list[ToolResult]) -> None:
        """Add the step's tool calls and their results to the conversation."""
        ...


@dataclass
class OpenAIResponsesTurn:
    """A turn on the OpenAI Responses API (which streams reasoning summaries; Chat Completions
    streams no reasoning at all)."""

    client: Any  # openai.AsyncOpenAI
    model: str
    instructions: str
    input: list[dict[str, Any]]
    toolbox: Toolbox
    max_output_tokens: int
    reasoning: bool = False
    provider: str = "openai"
    _output: list[dict[str, Any]] = field(default_factory=list)

    def open(self) -> Awaitable[Any]:
        options: dict[str, Any] = {}
        if self.toolbox.tools:
            options["tools"] = self.toolbox.openai_responses()
        if self.reasoning:
            options["reasoning"] = {"summary": "auto"}
        return self.client.responses.create(
            model=self.model,
            instructions=self.instructions,
            input=self.input,
            max_output_tokens=self.max_output_tokens,
            stream=True,
            **options,
        )

    async def _record(self, events: AsyncIterable[Any]) -> AsyncIterator[Any]:
        async for event in events:
            if event.type == "response.completed":
                # The step's output items go back as input: function calls, and the reasoning
                # items the API wants to see again with them.
                self._output = [
                    item.model_dump(mode="json", exclude_none=True)
                    for item in event.response.output
                ]
            yield event

    def events(self, upstream: Any) -> AsyncIterator[Any]:
        return openai_responses_events(self._record(upstream))

    def add_results(self, calls: list[ToolCall], results: list[ToolResult]) -> None:
        self.input += self._output
        self.input += [
            {"type": "function_call_output", "call_id": r.call_id, "output": r.for_model()}
            for r in results
        ]


@dataclass
class AnthropicTurn:
    """A turn on the Anthropic Messages API."""

    client: Any  # anthropic.AsyncAnthropic
    model: str
    system: str
    messages: list[dict[str, Any]]
    toolbox: Toolbox
    max_tokens: int
    reasoning: bool = False
    provider: str = "anthropic"
    thinking_budget: int = 1_024
    _blocks: list[dict[str, Any]] = field(default_factory=list)

    def open(self) -> Awaitable[Any]:
        options: dict[str, Any] = {}
        if self.toolbox.tools:
            options["tools"] = self.toolbox.anthropic()
        max_tokens = self.max_tokens
        if self.reasoning:
            options["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
            max_tokens += self.thinking_budget  # the budget counts towards max_tokens
        return self.client.messages.create(
            model=self.model,
            system=self.system,
            messages=self.messages,
            max_tokens=max_tokens,
            stream=True,
            **options,
        )

    async def _record(self, events: AsyncIterable[Any]) -> AsyncIterator[Any]:
        """Rebuild the step's content blocks as the API wants them back: thinking with its
        signature (which the core's adapter passes over), text, tool_use with its input."""
        self._blocks = []
        partial: dict[int, str] = {}
        async for event in events:
            if event.type == "content_block_start":
                self._blocks.append(event.content_block.model_dump(mode="json", exclude_none=True))
            elif event.type == "content_block_delta":
                block, delta = self._blocks[-1], event.delta
                if delta.type == "text_delta":
                    block["text"] = block.get("text", "") + delta.text
                elif delta.type == "thinking_delta":
                    block["thinking"] = block.get("thinking", "") + delta.thinking
                elif delta.type == "signature_delta":
                    block["signature"] = delta.signature
                elif delta.type == "input_json_delta":
                    partial[event.index] = partial.get(event.index, "") + delta.partial_json
            elif event.type == "content_block_stop" and event.index in partial:
                with contextlib.suppress(ValueError):
                    self._blocks[-1]["input"] = json.loads(partial[event.index] or "{}")
            yield event

    def events(self, upstream: Any) -> AsyncIterator[Any]:
        return anthropic_events(self._record(upstream))

    def add_results(self, calls: list[ToolCall], results: list[ToolResult]) -> None:
        self.messages.append({"role": "assistant", "content": self._blocks})
        blocks = []
        for result in results:
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": result.call_id,
                "content": result.for_model(),
            }
            if result.error is not None:
                block["is_error"] = True
            blocks.append(block)
        self.messages.append({"role": "user", "content": blocks})


# --- the turn ----------------------------------------------------------------------------------


async def run_turn(
    first: Any,
    turn: ProviderTurn,
    toolbox: Toolbox,
    limits: TurnLimits = TurnLimits(),
) -> AsyncIterator[TurnItem]:
    """The whole turn as items: steps of text, reasoning and tool calls, then `Finish`.

    `first` is the first step's stream, opened by the core (so that a provider failure before
    it is an HTTP error); a failure opening a later step is a failure during the stream. A
    stop request, or a reply nobody reads any more, is the core producer's to notice: it ends
    the turn where the turn waits (for the provider's next piece, say) with `stopped`.
    """
    upstream, opened = first, None
    total_in = total_out = 0
    try:
        for step in range(1, limits.max_steps + 1):
            if step > 1:
                opened = upstream = await turn.open()
            yield StepStart()
            assembler = ToolCallAssembler()
            finish: str | None = None
            used = Usage(0, 0)
            async for item in turn.events(upstream):
                if isinstance(item, Token | Reasoning):
                    yield item
                elif isinstance(item, ToolCallDelta):
                    assembler.add(item)
                    yield item
                elif isinstance(item, Usage):
                    # The turn's usage so far: what this step reported, plus earlier steps'.
                    used = item
                    yield Usage(total_in + used.input_tokens, total_out + used.output_tokens)
                elif isinstance(item, Finish):
                    finish = item.reason
            total_in, total_out = total_in + used.input_tokens, total_out + used.output_tokens
            if opened is not None:
                await close_upstream(opened)
                opened = None
            calls = assembler.finished()
            if finish is None:
                return  # cut short: no Finish, and the core reports the reply as interrupted
            if finish != "tool_calls" or not calls:
                yield StepEnd()
                yield Finish(finish)
                return
            results: list[ToolResult] = []
            for call in calls:
                async for item in _call(call, step, toolbox, limits, results):
                    yield item
            yield StepEnd()
            turn.add_results(calls, results)
        # The model still wants tools after max_steps provider calls: the turn ends here.
        yield Finish("tool_calls")
    finally:
        if opened is not None:
            await close_upstream(opened)


async def _call(
    call: ToolCall, step: int, toolbox: Toolbox, limits: TurnLimits, results: list[ToolResult]
) -> AsyncIterator[TurnItem]:
    """Check one call's input, run its tool, and say so; the result goes into `results`."""
    # The provider's id; the same stand-in as the shape's for a provider that sends none.
    call_id = call.id or f"call-{step}-{call.index}"
    name = call.name or "unknown"
    tool = toolbox.get(name)
    raw, problem = check_input(call, tool)
    if problem is not None or tool is None:
        error = problem or "There is no such tool."
        yield ToolInputError(call_id, name, raw, error)
        results.append(ToolResult(call_id, name, error=error))
        return
    yield ToolInputAvailable(call_id, name, raw)
    async for event in run_tool(tool, raw, call_id, limits):
        if isinstance(event, ToolResult):
            results.append(event)
            if event.error is not None:
                yield ToolOutputError(call_id, event.error)
            else:
                yield ToolOutput(call_id, event.output)
        else:
            yield event
