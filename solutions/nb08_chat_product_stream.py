"""Solutions for notebook 08 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402, F811
# %% exercise: failing_tool  check: lessons.toolkit.exercise_checks.nb08_chat_product_stream:check_failing_tool  candidate: POPULATION
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lessons.chat_ui.tools import CITIES, Report, ServerTool, ToolFailed


class CityPopulation(BaseModel):
    """The population of a city in the lesson's table."""

    model_config = ConfigDict(extra="forbid")

    city: str = Field(min_length=1, max_length=80, description="The city's name, e.g. Lima.")


async def city_population(args: CityPopulation, report: Report) -> dict[str, Any]:
    """The city's population; a city the table lacks is a failure the user must see, naming it."""
    ### BEGIN SOLUTION
    row = CITIES.get(args.city.strip().lower())
    if row is None:
        # ToolFailed: its message reaches the page (tool-output-error) and the model. Any other
        # exception is treated as a bug: the page only hears "The tool failed."
        raise ToolFailed(f"No city named {args.city[:40]!r} in the table.")
    return {"city": row["city"], "population": row["population"]}
    ### END SOLUTION


POPULATION = ServerTool("city_population", CityPopulation, city_population)
# %% end

# %% exercise: tool_progress  check: lessons.toolkit.exercise_checks.nb08_chat_product_stream:check_tool_progress  candidate: scan_table
import json
from typing import Annotated

from langchain_core.tools import InjectedToolCallId, tool
from langgraph.config import get_stream_writer

from lessons.chat_ui.tools import CITIES


@tool
async def scan_table(city: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Find a city in the lesson's table, row by row."""
    ### BEGIN SOLUTION
    write = get_stream_writer()
    for number, row in enumerate(CITIES.values(), start=1):
        # Say which call this is: with parallel calls, the page must attach each report to
        # its own tool card.
        write({"toolCallId": tool_call_id, "status": f"row {number} of {len(CITIES)}"})
        if row["city"].lower() == city.strip().lower():
            return json.dumps(row)
    return json.dumps({"city": city, "found": False})
    ### END SOLUTION


# %% end

# %% exercise: assemble_calls  check: lessons.toolkit.exercise_checks.nb08_chat_product_stream:check_assemble_calls
from typing import Any

from lessons.relay_core import ToolCallDelta


def assemble_calls(deltas: list[ToolCallDelta]) -> list[dict[str, Any]]:
    """One step's tool-call pieces -> `[{"id", "name", "arguments"}, ...]`, in the calls' order.

    The first piece of a call has its `id` and `name`; later pieces only its `index` and a
    fragment of the arguments. Pieces of parallel calls may arrive interleaved.
    """
    ### BEGIN SOLUTION
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
        call["id"] = call["id"] or delta.id
        call["name"] = call["name"] or delta.name
        call["arguments"] += delta.arguments
    return [calls[index] for index in sorted(calls)]
    ### END SOLUTION


# %% end
