"""The server's tools: what the model may ask the server to run, with validated inputs.

Each tool is a pydantic model of its input (the JSON schema the model is shown is the model's
schema) and an async function that runs it. Both tools here are deterministic and offline: a
unit converter, and a lookup in a table this lesson ships. A tool fails by raising `ToolFailed`
with a message fit for the user; any other exception is a bug, reported as a generic failure
(the details go to the server log, never to the client or the model).

A tool may report progress while it runs (`report(data)`); the turn sends each report to the
client as a `data-tool-progress` part, updated in place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Report = Callable[[dict[str, Any]], None]


class ToolFailed(Exception):
    """A tool could not do what was asked; the message is shown to the user and the model."""


class ConvertUnits(BaseModel):
    """Convert a quantity between units of length, mass or temperature."""

    model_config = ConfigDict(extra="forbid")

    value: float = Field(ge=-1e9, le=1e9, description="The quantity to convert.")
    from_unit: Literal["km", "miles", "m", "feet", "kg", "pounds", "celsius", "fahrenheit"]
    to_unit: Literal["km", "miles", "m", "feet", "kg", "pounds", "celsius", "fahrenheit"]


class LookupCity(BaseModel):
    """Look up a city in the lesson's table: its country, population and time zone."""

    model_config = ConfigDict(extra="forbid")

    city: str = Field(min_length=1, max_length=80, description="The city's name, e.g. Paris.")


# Units of one quantity, as (factor, offset) to the base unit: base = value * factor + offset.
_UNITS: dict[str, tuple[str, float, float]] = {
    "m": ("length", 1.0, 0.0),
    "km": ("length", 1000.0, 0.0),
    "feet": ("length", 0.3048, 0.0),
    "miles": ("length", 1609.344, 0.0),
    "kg": ("mass", 1.0, 0.0),
    "pounds": ("mass", 0.45359237, 0.0),
    "celsius": ("temperature", 1.0, 0.0),
    "fahrenheit": ("temperature", 5 / 9, -32 * 5 / 9),
}

# The lesson's table (populations: city proper, rounded; the figures are only examples).
CITIES: dict[str, dict[str, Any]] = {
    "paris": {"city": "Paris", "country": "France", "population": 2_100_000, "tz": "Europe/Paris"},
    "tokyo": {"city": "Tokyo", "country": "Japan", "population": 14_000_000, "tz": "Asia/Tokyo"},
    "lisbon": {
        "city": "Lisbon",
        "country": "Portugal",
        "population": 550_000,
        "tz": "Europe/Lisbon",
    },
    "oslo": {"city": "Oslo", "country": "Norway", "population": 710_000, "tz": "Europe/Oslo"},
    "nairobi": {
        "city": "Nairobi",
        "country": "Kenya",
        "population": 4_400_000,
        "tz": "Africa/Nairobi",
    },
    "lima": {"city": "Lima", "country": "Peru", "population": 10_000_000, "tz": "America/Lima"},
}


async def convert_units(args: ConvertUnits, report: Report) -> dict[str, Any]:
    source, target = _UNITS[args.from_unit], _UNITS[args.to_unit]
    if source[0] != target[0]:
        raise ToolFailed(f"Cannot convert {source[0]} ({args.from_unit}) to {target[0]}.")
    base = args.value * source[1] + source[2]
    result = (base - target[2]) / target[1]
    return {
        "value": args.value,
        "from": args.from_unit,
        "to": args.to_unit,
        "result": round(result, 4),
    }


async def lookup_city(args: LookupCity, report: Report) -> dict[str, Any]:
    report({"status": "searching", "rows": len(CITIES)})
    row = CITIES.get(args.city.strip().lower())
    if row is None:
        raise ToolFailed(f"No city named {args.city[:40]!r} in the table.")
    report({"status": "found", "rows": len(CITIES)})
    return dict(row)


@dataclass(frozen=True)
class ServerTool:
    """A tool the server runs: its name, its input model, and the function that runs it."""

    name: str
    input_model: type[BaseModel]
    run: Callable[[Any, Report], Awaitable[Any]]

    @property
    def description(self) -> str:
        return (self.input_model.__doc__ or self.name).strip()

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the input, as the providers take it."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        return schema


TOOLS: tuple[ServerTool, ...] = (
    ServerTool("convert_units", ConvertUnits, convert_units),
    ServerTool("lookup_city", LookupCity, lookup_city),
)
TOOL_NAMES = tuple(tool.name for tool in TOOLS)


@dataclass(frozen=True)
class Toolbox:
    """The tools one turn may use, and their definitions in each provider's shape."""

    tools: tuple[ServerTool, ...] = TOOLS

    def only(self, names: Sequence[str] | None) -> Toolbox:
        """The tools named (all of them for None), in this toolbox's order."""
        if names is None:
            return self
        return Toolbox(tuple(tool for tool in self.tools if tool.name in names))

    def get(self, name: str) -> ServerTool | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def openai_responses(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters(),
            }
            for tool in self.tools
        ]

    def anthropic(self) -> list[dict[str, Any]]:
        return [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters()}
            for tool in self.tools
        ]
