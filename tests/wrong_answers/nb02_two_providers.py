"""Wrong answers for notebook 02's exercises: each must be reported as "not yet"."""

_THINKING_HEAD = """
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core import CustomEvent, Reasoning, StreamItem, Token, anthropic_events


async def with_thinking(events: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
"""

# One event per piece of thinking, as it streams: dozens of `thinking` events.
ONE_EVENT_PER_DELTA = (
    _THINKING_HEAD
    + """
    async for item in anthropic_events(events):
        if isinstance(item, Reasoning):
            yield CustomEvent("thinking", {"text": item.text})
        else:
            yield item
"""
)

# The thinking as answer text: the client shows the model's scratchpad as its reply.
THINKING_AS_TOKENS = (
    _THINKING_HEAD
    + """
    async for item in anthropic_events(events):
        yield Token(item.text) if isinstance(item, Reasoning) else item
"""
)

# Flushes only before the first token: a reply cut while thinking loses its thinking.
FLUSHES_AT_TOKENS_ONLY = (
    _THINKING_HEAD
    + """
    thinking = []
    async for item in anthropic_events(events):
        if isinstance(item, Reasoning):
            thinking.append(item.text)
            continue
        if thinking and isinstance(item, Token):
            yield CustomEvent("thinking", {"text": "".join(thinking)})
            thinking = []
        yield item
"""
)

# Sends the thinking at the very end, after the answer.
THINKING_LAST = (
    _THINKING_HEAD
    + """
    thinking = []
    items = []
    async for item in anthropic_events(events):
        if isinstance(item, Reasoning):
            thinking.append(item.text)
        else:
            items.append(item)
    for item in items[:-2]:
        yield item
    yield CustomEvent("thinking", {"text": "".join(thinking)})
    for item in items[-2:]:
        yield item
"""
)

# Passes everything through: the thinking never reaches the client.
PASSES_THROUGH = (
    _THINKING_HEAD
    + """
    async for item in anthropic_events(events):
        yield item
"""
)

_ADAPTER_HEAD = """
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core import Finish, StreamItem, Token, Usage


async def adapt_responses(events: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
"""

# The colleague's version, as the notebook shows it: both bugs.
AS_GIVEN = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type in ("response.output_text.delta", "response.output_text.done"):
            yield Token(event.delta if event.type.endswith("delta") else event.text)
        elif event.type in ("response.completed", "response.incomplete"):
            usage = event.response.usage
            yield Usage(usage.input_tokens, usage.output_tokens)
            yield Finish("stop")
"""
)

# One bug fixed, the doubled text: a reply cut by max_output_tokens still reads as complete.
STILL_STOP_WHEN_CUT = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type == "response.output_text.delta":
            yield Token(event.delta)
        elif event.type in ("response.completed", "response.incomplete"):
            usage = event.response.usage
            yield Usage(usage.input_tokens, usage.output_tokens)
            yield Finish("stop")
"""
)

# The other bug fixed by dropping the incomplete case: a cut reply has no usage and no end.
DROPS_INCOMPLETE = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type == "response.output_text.delta":
            yield Token(event.delta)
        elif event.type == "response.completed":
            usage = event.response.usage
            yield Usage(usage.input_tokens, usage.output_tokens)
            yield Finish("stop")
"""
)

# Only the final text, once: correct text, but nothing streams until the reply is over.
ONLY_THE_DONE_TEXT = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type == "response.output_text.done":
            yield Token(event.text)
        elif event.type in ("response.completed", "response.incomplete"):
            usage = event.response.usage
            yield Usage(usage.input_tokens, usage.output_tokens)
            yield Finish("stop" if event.type == "response.completed" else "length")
"""
)

_DELAY_HEAD = """
import statistics
import time
from typing import Any

from lessons.toolkit.testkit import classify, collect

"""

# From the request being sent: the provider's own wait is counted as the relay's.
FROM_THE_REQUEST = (
    _DELAY_HEAD
    + """
async def first_token_delay_ms(url: str, body: dict[str, Any], mock: Any, runs: int = 5) -> float:
    delays = []
    for _ in range(runs):
        record = await collect(url, body, stop_when=lambda e: classify(e).kind == "token")
        delays.append((record.arrivals[-1] - record.started_at) * 1000)
    return statistics.median(delays)
"""
)

# From the provider's arrival time of the request: its wait again.
FROM_THE_MOCKS_START = (
    _DELAY_HEAD
    + """
async def first_token_delay_ms(url: str, body: dict[str, Any], mock: Any, runs: int = 5) -> float:
    delays = []
    for _ in range(runs):
        record = await collect(url, body, stop_when=lambda e: classify(e).kind == "token")
        delays.append((record.arrivals[-1] - mock.last_request().started_at) * 1000)
    return statistics.median(delays)
"""
)

# The first event, not the first token: `start` leaves before the provider's first token.
FIRST_EVENT = (
    _DELAY_HEAD
    + """
async def first_token_delay_ms(url: str, body: dict[str, Any], mock: Any, runs: int = 5) -> float:
    delays = []
    for _ in range(runs):
        record = await collect(url, body)
        delays.append((record.arrivals[0] - mock.last_request().first_token_at) * 1000)
    return statistics.median(delays)
"""
)

# Seconds, not milliseconds.
IN_SECONDS = (
    _DELAY_HEAD
    + """
async def first_token_delay_ms(url: str, body: dict[str, Any], mock: Any, runs: int = 5) -> float:
    delays = []
    for _ in range(runs):
        record = await collect(url, body, stop_when=lambda e: classify(e).kind == "token")
        delays.append(record.arrivals[-1] - mock.last_request().first_token_at)
    return statistics.median(delays)
"""
)

WRONG_ANSWERS = {
    "thinking_event": [
        ONE_EVENT_PER_DELTA,
        THINKING_AS_TOKENS,
        FLUSHES_AT_TOKENS_ONLY,
        THINKING_LAST,
        PASSES_THROUGH,
    ],
    "responses_bugs": [AS_GIVEN, STILL_STOP_WHEN_CUT, DROPS_INCOMPLETE, ONLY_THE_DONE_TEXT],
    "relay_delay": [FROM_THE_REQUEST, FROM_THE_MOCKS_START, FIRST_EVENT, IN_SECONDS],
}
