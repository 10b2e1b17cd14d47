"""Wrong answers for notebook 02's exercises: each must be reported as "not yet"."""

_ADAPTER_HEAD = """
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.two_providers.adapters import Finish, Token, UnifiedEvent, Usage


async def adapt_responses(events: AsyncIterable[Any]) -> AsyncIterator[UnifiedEvent]:
"""

# Also yields the full text of `response.output_text.done`: the reply appears twice.
DOUBLE_TEXT = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type == "response.output_text.delta":
            yield Token(event.delta)
        elif event.type == "response.output_text.done":
            yield Token(event.text)
        elif event.type == "response.completed":
            yield Usage(event.response.usage.input_tokens, event.response.usage.output_tokens)
            yield Finish("stop")
"""
)

# Never reports usage.
NO_USAGE = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type == "response.output_text.delta":
            yield Token(event.delta)
        elif event.type in ("response.completed", "response.incomplete"):
            yield Finish("stop" if event.type == "response.completed" else "length")
"""
)

# Treats a reply cut short by max_output_tokens as a normal stop (and forgets its usage).
IGNORES_INCOMPLETE = (
    _ADAPTER_HEAD
    + """
    async for event in events:
        if event.type == "response.output_text.delta":
            yield Token(event.delta)
        elif event.type == "response.completed":
            yield Usage(event.response.usage.input_tokens, event.response.usage.output_tokens)
            yield Finish("stop")
"""
)

# Returns a list instead of streaming.
NOT_A_GENERATOR = """
from lessons.two_providers.adapters import Token

def adapt_responses(events):
    return [Token("everything at once")]
"""

_USAGE_HEAD = """
from collections.abc import AsyncIterable
from typing import Any

from lessons.two_providers.adapters import Usage


async def anthropic_usage(events: AsyncIterable[Any]) -> Usage:
    input_tokens = output_tokens = 0
    async for event in events:
        if event.type == "message_start":
            input_tokens = event.message.usage.input_tokens
"""

# Adds up message_delta totals, which are cumulative.
SUMS_DELTAS = (
    _USAGE_HEAD
    + """
        elif event.type == "message_delta":
            output_tokens += event.usage.output_tokens
    return Usage(input_tokens, output_tokens)
"""
)

# Reads output tokens only from message_start, where they are a placeholder (1).
OUTPUT_FROM_START = (
    _USAGE_HEAD
    + """
            output_tokens = event.message.usage.output_tokens
    return Usage(input_tokens, output_tokens)
"""
)

# Counts text deltas instead of reading the provider's usage.
COUNTS_DELTAS = (
    _USAGE_HEAD
    + """
        elif event.type == "content_block_delta":
            output_tokens += 1
    return Usage(input_tokens, output_tokens)
"""
)

_REPLIER_HEAD = """
from collections.abc import AsyncIterator

from openai import AsyncOpenAI, OpenAI


class Replier:
    def __init__(self, model: str = "gpt-4o-mini") -> None:
        self.model = model
"""

# The original lesson's pattern: a sync client iterated inside an async generator.
SYNC_CLIENT = (
    _REPLIER_HEAD
    + """
        self.client = OpenAI()

    async def tokens(self, message: str) -> AsyncIterator[str]:
        stream = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": message}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
"""
)

# Async, but collects the whole reply before yielding anything: concurrent, yet not streaming.
BUFFERS_THE_REPLY = (
    _REPLIER_HEAD
    + """
        self.client = AsyncOpenAI()

    async def tokens(self, message: str) -> AsyncIterator[str]:
        stream = await self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": message}], stream=True
        )
        pieces = [c.choices[0].delta.content async for c in stream if c.choices]
        for piece in pieces:
            if piece:
                yield piece
"""
)

# AsyncOpenAI, but the create call is not awaited.
MISSING_AWAIT = (
    _REPLIER_HEAD
    + """
        self.client = AsyncOpenAI()

    async def tokens(self, message: str) -> AsyncIterator[str]:
        stream = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": message}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
"""
)

WRONG_ANSWERS = {
    "responses_adapter": [DOUBLE_TEXT, NO_USAGE, IGNORES_INCOMPLETE, NOT_A_GENERATOR],
    "anthropic_usage": [SUMS_DELTAS, OUTPUT_FROM_START, COUNTS_DELTAS],
    "unblock_the_loop": [SYNC_CLIENT, BUFFERS_THE_REPLY, MISSING_AWAIT],
}
