"""The same protocol from a LangGraph agent: `POST /api/agent`, the body of `POST /api/chat`.

The agent is LangGraph's tool loop, built from its prebuilt parts: a `model` node (the chat model
with the tools bound) and a `tools` node (`ToolNode`), joined by `tools_condition`, which goes to
`tools` while the model asks for tools and ends when it answers. (`create_react_agent` builds the
same graph but is deprecated in langgraph 1.x for `langchain.agents.create_agent`; the graph
written out shows the nodes whose names the stream reports.)

The graph is streamed with three modes at once, each `(mode, data)`:
- `messages`: the model's tokens as they come (`AIMessageChunk`s, with tool-call chunks);
- `updates`: each node's output when it finishes: the model's whole message (its tool calls
  parsed), the tools node's `ToolMessage`s;
- `custom`: what a tool writes with `get_stream_writer()` while it runs (its progress).

They map onto the same chunks as the hand-written turn: steps, text, tool input as it streams,
tool input available (or its error), tool output (or its error), data parts, finish.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import anyio
import openai
from fastapi import APIRouter, FastAPI, Request
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, ToolException
from langchain_openai import ChatOpenAI
from langgraph.config import get_stream_writer
from langgraph.errors import GraphRecursionError
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import ValidationError, create_model

from lessons.chat_ui.protocol import (
    DataPart,
    StepEnd,
    StepStart,
    ToolInputAvailable,
    ToolInputError,
    ToolOutput,
    ToolOutputError,
    TurnItem,
    UIMessageStream,
)
from lessons.chat_ui.requests import (
    ChatTurnRequest,
    TextPart,
    ToolPart,
    UIMessage,
    tool_result_text,
)
from lessons.chat_ui.routes import system_prompt
from lessons.chat_ui.tools import ServerTool, Toolbox, ToolFailed
from lessons.chat_ui.turn import TurnLimits
from lessons.relay_core import (
    EventStream,
    Finish,
    RelayContext,
    RelaySettings,
    Token,
    ToolCallDelta,
    Usage,
    invalid,
    model_name,
)
from lessons.relay_core.clients import sdk_timeout

router = APIRouter()


# --- the tools, as LangChain tools --------------------------------------------------------------


def langchain_tool(tool: ServerTool) -> BaseTool:
    """A server tool as a LangChain tool: same name, schema and function. Its progress goes to
    the graph's `custom` stream; a `ToolFailed` becomes an error `ToolMessage`."""
    # The tool call's id is injected by ToolNode (the model never sees or fills it).
    schema = create_model(
        tool.input_model.__name__,
        __base__=tool.input_model,
        tool_call_id=(Annotated[str, InjectedToolCallId], ...),
    )

    async def run(tool_call_id: str, **fields: Any) -> str:
        write = get_stream_writer()

        def report(data: dict[str, Any]) -> None:
            write({"toolCallId": tool_call_id, **data})

        try:
            output = await tool.run(tool.input_model(**fields), report)
        except ToolFailed as failed:
            raise ToolException(str(failed)) from None
        return json.dumps(output)

    return StructuredTool.from_function(
        coroutine=run,
        name=tool.name,
        description=tool.description,
        args_schema=schema,
        handle_tool_error=True,
    )


def build_agent(model: BaseChatModel, toolbox: Toolbox, max_tokens: int) -> CompiledStateGraph:
    """The agent with the server's tools."""
    return build_graph(model, [langchain_tool(tool) for tool in toolbox.tools], max_tokens)


def build_graph(model: BaseChatModel, tools: list[BaseTool], max_tokens: int) -> CompiledStateGraph:
    """LangGraph's tool loop: model -> tools -> model ... until the model answers in text."""
    bound = (
        model.bind_tools(tools, max_tokens=max_tokens)
        if tools
        else model.bind(max_tokens=max_tokens)
    )

    async def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    if tools:
        graph.add_node("tools", ToolNode(tools))
        graph.add_conditional_edges("model", tools_condition)
        graph.add_edge("tools", "model")
    return graph.compile()


# --- the conversation, as LangChain messages ---------------------------------------------------


def to_langchain_messages(system: str, messages: list[UIMessage]) -> list[BaseMessage]:
    out: list[BaseMessage] = [SystemMessage(content=system)]
    for message in messages:
        if message.role == "user":
            out.append(HumanMessage(content=message.text()))
            continue
        if message.role != "assistant":
            continue
        text, calls = "", []
        for part in message.parts:
            if isinstance(part, TextPart):
                text += part.text
            elif isinstance(part, ToolPart) and part.state in ("output-available", "output-error"):
                calls.append(part)
        if not text and not calls:
            continue
        out.append(
            AIMessage(
                content=text,
                tool_calls=[
                    {
                        "id": c.toolCallId,
                        "name": c.tool_name,
                        "args": c.input if isinstance(c.input, dict) else {},
                    }
                    for c in calls
                ],
            )
        )
        out += [ToolMessage(content=tool_result_text(c), tool_call_id=c.toolCallId) for c in calls]
    return out


# --- the graph's stream, as the protocol's items ------------------------------------------------

STREAM_MODES = ["messages", "updates", "custom"]


_END = object()
CLOSE_TIMEOUT_S = 5.0


class OpenedGraph:
    """The graph's stream, run in a task of its own and read through a queue.

    Why a task: the relay's loop is cancelled the way anyio cancels (again at every await until
    it returns), which would interrupt the graph's own clean-up of its node tasks and leave the
    model's call running. In its own task, the graph is cancelled once, when the stream is
    closed, and closes the model's HTTP stream as it should.
    """

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
        self._head: list[Any] = []  # the first event, read by `first` and not yet returned
        self._task = asyncio.ensure_future(self._pump(stream))

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        try:
            async for event in stream:
                await self._queue.put(event)
        except Exception as exc:  # handed to the reader, which raises it
            await self._queue.put(exc)
        else:
            await self._queue.put(_END)

    async def _next(self) -> Any:
        event = await self._queue.get()
        if isinstance(event, Exception):
            raise event
        return event

    async def first(self) -> None:
        """Wait for the first event: the provider has answered (or its error is raised)."""
        self._head.append(await self._next())

    def __aiter__(self) -> OpenedGraph:
        return self

    async def __anext__(self) -> Any:
        event = self._head.pop() if self._head else await self._next()
        if event is _END:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Cancel the graph, which closes the model's HTTP stream, and wait until it has."""
        self._task.cancel()
        # Shielded, and asyncio.wait rather than `await task`: a cancellation of this coroutine
        # (anyio delivers one at every await while its scope is cancelled) would be passed on
        # to the task, interrupting the graph's clean-up and leaving the model's call running.
        with anyio.CancelScope(shield=True):
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)


async def open_graph(graph: CompiledStateGraph, inputs: Any, config: dict[str, Any]) -> OpenedGraph:
    """Start the graph and wait for its first event: the graph makes no provider call until it
    is iterated, and a provider failure must still be an HTTP error (the core awaits this)."""
    opened = OpenedGraph(graph.astream(inputs, config, stream_mode=STREAM_MODES))
    try:
        await opened.first()
    except BaseException:
        await opened.aclose()
        raise
    return opened


async def agent_events(
    events: AsyncIterator[Any], toolbox: Toolbox | None
) -> AsyncIterator[TurnItem]:
    """The graph's `(mode, data)` events -> the protocol's items. Tool inputs are checked with
    `toolbox`'s models (None: left to the tools node, which reports a bad input as an error)."""
    step: int | None = None
    finish: str | None = None
    used = Usage(0, 0)
    refused: set[str] = set()  # calls whose input was refused: their error is already told
    try:
        async for mode, data in events:
            if mode == "messages":
                chunk, metadata = data
                if not isinstance(chunk, AIMessageChunk):
                    continue  # the tools node's messages: told from `updates`
                if metadata.get("langgraph_step") != step:
                    step = metadata.get("langgraph_step")
                    yield StepStart()
                if chunk.text:
                    yield Token(chunk.text)
                for piece in chunk.tool_call_chunks:
                    index = piece.get("index") or 0
                    yield ToolCallDelta(
                        index, piece.get("id"), piece.get("name"), piece.get("args") or ""
                    )
            elif mode == "custom":
                yield DataPart("tool-progress", data, id=f"progress-{data.get('toolCallId')}")
            elif mode == "updates":
                for node, update in data.items():
                    for message in (update or {}).get("messages", []):
                        if node == "model" and isinstance(message, AIMessage):
                            finish = message.response_metadata.get("finish_reason") or None
                            usage = message.usage_metadata
                            if usage:
                                used = Usage(
                                    used.input_tokens + usage["input_tokens"],
                                    used.output_tokens + usage["output_tokens"],
                                )
                                yield used
                            for item in _tool_inputs(message, toolbox, refused):
                                yield item
                            if not message.tool_calls and not message.invalid_tool_calls:
                                yield StepEnd()
                        elif node == "tools" and isinstance(message, ToolMessage):
                            if message.tool_call_id in refused:
                                continue
                            if message.status == "error":
                                yield ToolOutputError(message.tool_call_id, str(message.content))
                            else:
                                yield ToolOutput(message.tool_call_id, _json(message.content))
                    if node == "tools":
                        yield StepEnd()
    except GraphRecursionError:
        # The model still wanted tools after the turn's last allowed step: end the turn here.
        yield StepEnd()
        yield Finish("tool_calls")
        return
    if finish is not None:
        yield Finish(str(finish))
    # No finish reason: the model's stream was cut short, and the core says so.


def _tool_inputs(message: AIMessage, toolbox: Toolbox | None, refused: set[str]) -> list[TurnItem]:
    """The model's finished tool calls: each one's input, checked as the hand-written turn does."""
    items: list[TurnItem] = []
    for call in message.tool_calls:
        call_id, name = call.get("id") or "", call["name"]
        tool = toolbox.get(name) if toolbox is not None else None
        problem = None
        if toolbox is not None and tool is None:
            problem = f"There is no tool named {name[:64]!r}."
        if tool is not None:
            try:
                tool.input_model.model_validate(call["args"])
            except ValidationError as exc:
                problem = f"Invalid input: {exc.errors()[0]['msg']}"
        if problem is None:
            items.append(ToolInputAvailable(call_id, name, call["args"]))
        else:
            refused.add(call_id)
            items.append(ToolInputError(call_id, name, call["args"], problem))
    for broken in message.invalid_tool_calls:
        call_id = broken.get("id") or ""
        refused.add(call_id)
        items.append(
            ToolInputError(
                call_id,
                broken.get("name") or "unknown",
                broken.get("args"),
                "The tool input is not valid JSON.",
            )
        )
    return items


def _json(content: Any) -> Any:
    try:
        return json.loads(content) if isinstance(content, str) else content
    except ValueError:
        return content


# --- the route and the model -------------------------------------------------------------------


@router.post("/api/agent", response_class=EventStream)
async def agent(body: ChatTurnRequest, request: Request, relay: RelayContext) -> EventStream:
    """One turn of the LangGraph agent, on the UI message stream protocol (OpenAI only: the
    agent's model is the app's ChatOpenAI)."""
    state = request.app.state
    if body.provider != "openai":
        raise invalid("provider", "the agent's model is OpenAI's; leave provider out")
    system = system_prompt(body, relay)
    toolbox: Toolbox = state.toolbox.only(body.tools)
    limits: TurnLimits = state.limits
    graph = build_agent(state.agent_model, toolbox, relay.max_tokens(body.max_tokens))
    inputs = {"messages": to_langchain_messages(system, body.messages)}
    # Each model step and each tools step is a graph step; one more for the last answer.
    config = {"recursion_limit": 2 * limits.max_steps + 1}
    return relay.stream(
        open_graph(graph, inputs, config),
        lambda events: agent_events(events, toolbox),
        UIMessageStream(f"msg-{secrets.token_urlsafe(12)}"),
        provider="openai",
        prompt=[system, *body.texts()],
    )


def build_agent_model(settings: RelaySettings) -> ChatOpenAI:
    """The agent's ChatOpenAI, configured from the SDK's environment (OPENAI_BASE_URL, ...)."""
    return ChatOpenAI(
        model=model_name("openai"),
        # With a custom base URL langchain-openai stops asking for usage in streams.
        stream_usage=True,
        max_retries=2,
        max_tokens=settings.default_max_tokens,
        timeout=sdk_timeout(settings),
        # Its own HTTP client, on the server's event loop (the default one is shared by every
        # ChatOpenAI in the process and bound to the first loop that used it).
        http_async_client=openai.DefaultAsyncHttpxClient(),
        http_socket_options=(),
    )


def agent_lifespan(
    settings: RelaySettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.agent_model = build_agent_model(settings)
        try:
            yield
        finally:
            await app.state.agent_model.root_async_client.close()

    return lifespan
