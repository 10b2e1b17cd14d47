"""Checkers for notebook 08's exercises: a tool whose failure the page shows, a LangGraph tool
that streams its progress, and assembling parallel tool calls whose pieces interleave."""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai

from lessons.chat_ui.agent import agent_events, build_agent_model, build_graph, open_graph
from lessons.chat_ui.app import create_app
from lessons.chat_ui.assemble import assemble
from lessons.chat_ui.protocol import DataPart, ToolInputAvailable, ToolOutput
from lessons.chat_ui.tools import ServerTool, Toolbox, ToolFailed
from lessons.relay_core import RelaySettings, ToolCallDelta, anthropic_events, openai_chat_events
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.providers import sdk_env_pointed_at
from lessons.toolkit.ui_stream import turn_body, ui_turn


@contextlib.contextmanager
def _private_mock(**options: Any) -> Iterator[tuple[Any, str]]:
    """A mock of the checker's own, with the SDK environment pointed at it meanwhile."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders(**options)
    with BackgroundServer(mock.app) as server, sdk_env_pointed_at(server.url):
        yield mock, server.url


# --- failing_tool --------------------------------------------------------------------------------


async def _run_directly(tool: ServerTool, city: str) -> Any:
    return await tool.run(tool.input_model(city=city), lambda data: None)


async def check_failing_tool(tool: ServerTool) -> None:
    if not isinstance(tool, ServerTool):
        raise NotYet("POPULATION must be a ServerTool(name, input model, function)")
    try:
        found = await _run_directly(tool, "Lima")
    except ToolFailed as failed:
        raise NotYet(
            f"the tool failed for Lima, which the table has ({failed}): the table's keys are "
            "lower case, and a user may type any case"
        ) from None
    if not isinstance(found, dict) or found.get("population") != 10_000_000:
        raise NotYet(f"for Lima the tool must return its population (10000000), not {found!r}")
    try:
        missing = await _run_directly(tool, "Atlantis")
    except ToolFailed as failed:
        if "Atlantis" not in str(failed):
            raise NotYet(
                f"the failure says {str(failed)!r}: name the city the table lacks, so that "
                "the user (and the model) know what went wrong"
            ) from None
    except NotImplementedError:
        raise
    except Exception as exc:
        raise NotYet(
            f"for Atlantis the tool raised {type(exc).__name__}: the turn reports any exception "
            "but ToolFailed as a bug, and the page shows only 'The tool failed.'"
        ) from exc
    else:
        raise NotYet(
            f"for Atlantis the tool returned {missing!r}: a returned value is an output, shown "
            "as a success; raise ToolFailed so that the page shows tool-output-error"
        )
    # End to end: the page's stream, through the app, with this tool only.
    with _private_mock():
        server = BackgroundServer(create_app(toolbox=Toolbox((tool,)))).start()
        try:
            turn = ui_turn(
                server.url + "/api/chat", turn_body("What is the population of Atlantis?")
            )
        finally:
            server.stop()
    errors = turn.of_type("tool-output-error")
    if not errors or "Atlantis" not in errors[0]["errorText"]:
        raise NotYet(f"the stream did not show the failure as tool-output-error: {turn.types()}")
    if turn.types()[-1] != "finish":
        raise NotYet("after the failure the turn must go on to the model's answer")
    part = next(p for p in assemble(turn.chunks).message["parts"] if p["type"].startswith("tool-"))
    if part["state"] != "output-error":
        raise NotYet(f"the page's tool part ends in state {part['state']!r}, not output-error")


# --- tool_progress -------------------------------------------------------------------------------


async def check_tool_progress(candidate: Any) -> None:
    if not hasattr(candidate, "ainvoke") or not hasattr(candidate, "name"):
        raise NotYet("scan_table must be a LangChain tool (decorate it with @tool)")
    with _private_mock():
        model = build_agent_model(RelaySettings())
        try:
            graph = build_graph(model, [candidate], max_tokens=200)
            inputs = {"messages": [("user", "Look up Paris and Tokyo in the city table.")]}
            items = [
                item
                async for item in agent_events(
                    await open_graph(graph, inputs, {"recursion_limit": 6}), None
                )
            ]
        finally:
            await model.root_async_client.close()
    calls = [item.tool_call_id for item in items if isinstance(item, ToolInputAvailable)]
    outputs = {item.tool_call_id: item.output for item in items if isinstance(item, ToolOutput)}
    progress = [item for item in items if isinstance(item, DataPart)]
    if len(calls) != 2:
        raise NotYet(f"the model called the tool {len(calls)} times, expected 2 parallel calls")
    if not progress:
        raise NotYet(
            "no progress reached the stream: write it from inside the tool with "
            "langgraph.config.get_stream_writer() (the graph's `custom` mode)"
        )
    for call_id, city in zip(calls, ("Paris", "Tokyo"), strict=True):
        output = outputs.get(call_id)
        if not isinstance(output, dict) or output.get("city") != city:
            raise NotYet(f"the {city} call returned {output!r}, expected its row of the table")
        own = [
            p for p in progress if isinstance(p.data, dict) and p.data.get("toolCallId") == call_id
        ]
        if not own:
            raise NotYet(
                "each report must say which call it belongs to ({'toolCallId': ...}, injected "
                "with InjectedToolCallId): with two calls at once, the page cannot tell whose "
                "progress it is"
            )
        order = [
            i for i, item in enumerate(items) if item in own or item is _output_of(items, call_id)
        ]
        if order[-1] != items.index(_output_of(items, call_id)):
            raise NotYet("progress must come while the tool runs, before its output")
    if len(progress) < 3:
        raise NotYet(
            f"only {len(progress)} reports for two scans: report as the scan goes (each row), "
            "not once at the end"
        )


def _output_of(items: list[Any], call_id: str) -> Any:
    return next(i for i in items if isinstance(i, ToolOutput) and i.tool_call_id == call_id)


# --- assemble_calls ------------------------------------------------------------------------------

TOOL = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PROMPT = "Look up Lisbon and Oslo in the city table."


async def _deltas(events: AsyncIterator[Any]) -> list[ToolCallDelta]:
    return [item async for item in events if isinstance(item, ToolCallDelta)]


async def _provider_deltas(url: str) -> dict[str, list[ToolCallDelta]]:
    """The same two parallel calls as OpenAI streams them (interleaved, as a rule of the mock
    scripts it) and as Anthropic does (one after the other)."""
    messages = [{"role": "user", "content": PROMPT}]
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="mock") as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            tools=[{"type": "function", "function": {"name": "lookup_city", "parameters": TOOL}}],
            stream=True,
        )
        interleaved = await _deltas(openai_chat_events(stream))
    async with anthropic.AsyncAnthropic(base_url=url, api_key="mock") as client:
        raw = await client.messages.create(
            model="claude-haiku-4-5-20251001",
            max_tokens=200,
            messages=messages,  # type: ignore[arg-type]
            tools=[{"name": "lookup_city", "input_schema": TOOL}],
            stream=True,
        )
        sequential = await _deltas(anthropic_events(raw))
    return {"interleaved": interleaved, "sequential": sequential}


def _check_calls(name: str, calls: Any, deltas: list[ToolCallDelta]) -> None:
    expected_ids = [d.id for d in deltas if d.id is not None]
    if not isinstance(calls, list) or len(calls) != len(expected_ids):
        raise NotYet(f"{name}: expected {len(expected_ids)} calls, got {calls!r}"[:300])
    for call, call_id, city in zip(calls, expected_ids, ("Lisbon", "Oslo"), strict=True):
        if not isinstance(call, dict) or call.get("id") != call_id:
            raise NotYet(f"{name}: the calls must keep their ids, in order: got {calls!r}"[:300])
        if call.get("name") != "lookup_city":
            raise NotYet(f"{name}: a call lost its name: {call!r}")
        try:
            arguments = json.loads(call.get("arguments", ""))
        except (TypeError, ValueError):
            raise NotYet(
                f"{name}: the arguments {call.get('arguments')!r} are not JSON: fragments of "
                "two calls were mixed. Which field of a piece says whose it is?"
            ) from None
        if arguments != {"city": city}:
            raise NotYet(f"{name}: call {call_id} got {arguments!r}, expected {{'city': {city!r}}}")


async def check_assemble_calls(assemble_calls: Any) -> None:
    with _private_mock() as (mock, url):
        mock.script(
            prompt_contains="Lisbon", endpoint="chat.completions", interleave_tool_calls=True
        )
        streams = await _provider_deltas(url)
    for name, deltas in streams.items():
        calls = assemble_calls(list(deltas))
        if inspect.isawaitable(calls):
            raise NotYet("assemble_calls is a plain function (def, not async def)")
        _check_calls(name, calls, deltas)
