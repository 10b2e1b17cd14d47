"""Wrong answers for notebook 08's exercises: each must be reported as "not yet"."""

_TOOL_HEAD = """
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lessons.chat_ui.tools import CITIES, Report, ServerTool, ToolFailed


class CityPopulation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: str = Field(min_length=1, max_length=80)


async def city_population(args: CityPopulation, report: Report) -> dict[str, Any]:
%s

POPULATION = ServerTool("city_population", CityPopulation, city_population)
"""

# A plain exception: the turn treats it as a bug, and the page only says "The tool failed."
PLAIN_EXCEPTION = (
    _TOOL_HEAD
    % """
    row = CITIES.get(args.city.strip().lower())
    if row is None:
        raise ValueError(f"No city named {args.city!r}")
    return {"city": row["city"], "population": row["population"]}
"""
)
# The failure returned as an output: the page shows a success.
RETURNED_ERROR = (
    _TOOL_HEAD
    % """
    row = CITIES.get(args.city.strip().lower())
    if row is None:
        return {"error": f"No city named {args.city!r} in the table."}
    return {"city": row["city"], "population": row["population"]}
"""
)
# A failure that does not say which city.
VAGUE_FAILURE = (
    _TOOL_HEAD
    % """
    row = CITIES.get(args.city.strip().lower())
    if row is None:
        raise ToolFailed("Not found.")
    return {"city": row["city"], "population": row["population"]}
"""
)
# The table's keys are lower case: "Lima" is never found.
CASE_SENSITIVE = (
    _TOOL_HEAD
    % """
    row = CITIES.get(args.city)
    if row is None:
        raise ToolFailed(f"No city named {args.city!r} in the table.")
    return {"city": row["city"], "population": row["population"]}
"""
)

_SCAN_HEAD = '''
import json
from typing import Annotated

from langchain_core.tools import InjectedToolCallId, tool
from langgraph.config import get_stream_writer

from lessons.chat_ui.tools import CITIES


@tool
async def scan_table(city: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Find a city in the lesson's table, row by row."""
%s
'''

# Progress without the call's id: two parallel calls' reports cannot be told apart.
NO_CALL_ID = (
    _SCAN_HEAD
    % """
    write = get_stream_writer()
    for number, row in enumerate(CITIES.values(), start=1):
        write({"status": f"row {number}"})
        if row["city"].lower() == city.lower():
            return json.dumps(row)
    return json.dumps({"city": city, "found": False})
"""
)
# Progress put in the output: nothing streams while the tool runs.
PROGRESS_IN_OUTPUT = (
    _SCAN_HEAD
    % """
    rows = []
    for number, row in enumerate(CITIES.values(), start=1):
        rows.append(f"row {number}")
        if row["city"].lower() == city.lower():
            return json.dumps({**row, "progress": rows})
    return json.dumps({"city": city, "found": False})
"""
)
# One report, at the end: no progress while the scan goes.
ONE_REPORT_AT_THE_END = (
    _SCAN_HEAD
    % """
    found = next((r for r in CITIES.values() if r["city"].lower() == city.lower()), None)
    get_stream_writer()({"toolCallId": tool_call_id, "status": "done"})
    return json.dumps(found or {"city": city, "found": False})
"""
)

# The pitfall: fragments appended to the call that started last.
BY_ARRIVAL = """
def assemble_calls(deltas):
    calls = []
    for delta in deltas:
        if delta.name is not None:
            calls.append({"id": delta.id, "name": delta.name, "arguments": ""})
        calls[-1]["arguments"] += delta.arguments
    return calls
"""
# Keyed by id: only a call's first piece carries its id.
BY_ID = """
def assemble_calls(deltas):
    calls = {}
    for delta in deltas:
        call = calls.setdefault(delta.id, {"id": delta.id, "name": delta.name, "arguments": ""})
        call["arguments"] += delta.arguments
    return list(calls.values())
"""
# Keyed by name: two calls of the same tool become one.
BY_NAME = """
def assemble_calls(deltas):
    calls, current = {}, None
    for delta in deltas:
        current = delta.name or current
        call = calls.setdefault(current, {"id": delta.id, "name": current, "arguments": ""})
        call["arguments"] += delta.arguments
    return list(calls.values())
"""

WRONG_ANSWERS = {
    "failing_tool": [PLAIN_EXCEPTION, RETURNED_ERROR, VAGUE_FAILURE, CASE_SENSITIVE],
    "tool_progress": [NO_CALL_ID, PROGRESS_IN_OUTPUT, ONE_REPORT_AT_THE_END],
    "assemble_calls": [BY_ARRIVAL, BY_ID, BY_NAME],
}
