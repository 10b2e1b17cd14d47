"""Solutions for notebook 02 (the learner's stubs are generated from the regions below)."""
# ruff: noqa: E402, F811  (each exercise region is a notebook cell of its own: it imports what it uses)

from __future__ import annotations

# %% exercise: thinking_event  check: lessons.toolkit.exercise_checks.nb02_two_providers:check_thinking_event  candidate: with_thinking
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core import CustomEvent, Reasoning, StreamItem, anthropic_events


async def with_thinking(events: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
    """What `anthropic_events` yields, except that the model's thinking is sent as one
    `CustomEvent("thinking", {"text": <the whole thinking>})`, just before the first item that
    is not thinking."""
    ### BEGIN SOLUTION
    thinking: list[str] = []
    async for item in anthropic_events(events):
        if isinstance(item, Reasoning):
            thinking.append(item.text)
            continue
        if thinking:
            # Anything else means the thinking is over: the answer's text, a tool call, or, for a
            # reply cut by max_tokens while it was thinking, the usage.
            yield CustomEvent("thinking", {"text": "".join(thinking)})
            thinking.clear()
        yield item
    ### END SOLUTION


# %% end

# %% exercise: responses_bugs  check: lessons.toolkit.exercise_checks.nb02_two_providers:check_responses_bugs  candidate: adapt_responses
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core import Finish, StreamItem, Token, Usage


async def adapt_responses(events: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
    """OpenAI Responses events -> a Token per piece of text, then Usage and Finish."""
    ### BEGIN SOLUTION
    async for item in events:
        kind = item.type
        # Only the deltas: `response.output_text.done` repeats the whole text.
        if kind == "response.output_text.delta":
            yield Token(item.delta)
        elif kind in ("response.completed", "response.incomplete"):
            counts = item.response.usage
            yield Usage(counts.input_tokens, counts.output_tokens)
            # Incomplete means cut short (max_output_tokens): a client must not read it as whole.
            yield Finish("stop" if kind == "response.completed" else "length")
    ### END SOLUTION


# %% end

# %% exercise: relay_delay  check: lessons.toolkit.exercise_checks.nb02_two_providers:check_relay_delay  candidate: first_token_delay_ms
import statistics
from typing import Any

from lessons.toolkit.testkit import classify, collect


async def first_token_delay_ms(url: str, body: dict[str, Any], mock: Any, runs: int = 5) -> float:
    """How long a relay holds the first token: the median, over `runs` requests to `url`, of the
    time from the mock sending the reply's first token to the client receiving it."""
    ### BEGIN SOLUTION
    delays = []
    for _ in range(runs):
        # Leave at the first token: the rest of the reply is not what is measured.
        record = await collect(url, body, stop_when=lambda e: classify(e).kind == "token")
        sent = mock.last_request().first_token_at  # time.monotonic(), as the kit's arrivals
        delays.append((record.arrivals[-1] - sent) * 1000)
    # The median: one slow run on a busy machine is not the relay's doing.
    return statistics.median(delays)
    ### END SOLUTION


# %% end
