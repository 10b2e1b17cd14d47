"""Solutions for notebook 02 (the learner's stubs are generated from the regions below)."""
# ruff: noqa: E402, F811  (each exercise region is a notebook cell of its own: it imports what it uses)

from __future__ import annotations

# %% exercise: responses_adapter  check: lessons.toolkit.exercise_checks.nb02_two_providers:check_responses_adapter
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.two_providers.adapters import Finish, Token, UnifiedEvent, Usage


async def adapt_responses(events: AsyncIterable[Any]) -> AsyncIterator[UnifiedEvent]:
    """OpenAI Responses events -> Token* (the text pieces), then Usage, then Finish.

    Finish("stop") after `response.completed`, Finish("length") after `response.incomplete`.
    """
    ### BEGIN SOLUTION
    usage: Usage | None = None
    finish: Finish | None = None
    async for event in events:
        if event.type == "response.output_text.delta" and event.delta:
            yield Token(event.delta)
        elif event.type in ("response.completed", "response.incomplete"):
            # Usage arrives only in the terminal event's response object.
            usage = Usage(event.response.usage.input_tokens, event.response.usage.output_tokens)
            finish = Finish("stop" if event.type == "response.completed" else "length")
    if usage is None or finish is None:
        raise RuntimeError("the stream ended without its terminal event")
    yield usage
    yield finish
    ### END SOLUTION


# %% end

# %% exercise: anthropic_usage  check: lessons.toolkit.exercise_checks.nb02_two_providers:check_anthropic_usage
from collections.abc import AsyncIterable
from typing import Any

from lessons.two_providers.adapters import Usage


async def anthropic_usage(events: AsyncIterable[Any]) -> Usage:
    """Read a raw Anthropic Messages stream to its end; return the tokens it billed."""
    ### BEGIN SOLUTION
    input_tokens = output_tokens = 0
    async for event in events:
        if event.type == "message_start":
            input_tokens = event.message.usage.input_tokens
            output_tokens = event.message.usage.output_tokens
        elif event.type == "message_delta":
            # Cumulative totals: the latest one replaces the earlier ones.
            output_tokens = event.usage.output_tokens
            if event.usage.input_tokens is not None:
                input_tokens = event.usage.input_tokens
    return Usage(input_tokens, output_tokens)
    ### END SOLUTION


# %% end

# %% exercise: unblock_the_loop  check: lessons.toolkit.exercise_checks.nb02_two_providers:check_unblock_the_loop  candidate: Replier
from collections.abc import AsyncIterator

from openai import AsyncOpenAI


class Replier:
    """What the app's lifespan creates once; each request streams a reply through it."""

    def __init__(self, model: str = "gpt-4o-mini") -> None:
        self.model = model
        ### BEGIN SOLUTION
        self.client = AsyncOpenAI()
        ### END SOLUTION

    async def tokens(self, message: str) -> AsyncIterator[str]:
        """Yield the reply's text pieces as the provider sends them."""
        ### BEGIN SOLUTION
        stream = await self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": message}], stream=True
        )
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        finally:
            await stream.close()
        ### END SOLUTION


# %% end
