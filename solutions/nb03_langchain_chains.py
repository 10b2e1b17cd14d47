"""Solutions for notebook 03 (the learner's stubs are generated from the regions below)."""
# ruff: noqa: E402, F811  (each exercise region is a notebook cell of its own: it imports what it uses)

from __future__ import annotations

# %% exercise: two_step_items  check: lessons.toolkit.exercise_checks.nb03_langchain_chains:check_two_step_items  candidate: two_step_items
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core import Finish, StreamItem, Token, Usage


async def two_step_items(events: AsyncIterable[dict[str, Any]]) -> AsyncIterator[StreamItem]:
    """build_two_step_chain(llm).astream_events(..., version="v2") -> the core's items:

    - a Token for each non-empty piece of the rewrite (tag "final"), none of the draft's;
    - one Usage, at the end: both model calls together (the draft is billed too);
    - a Finish with the rewrite's finish reason, only if *both* calls reported one.
    """
    ### BEGIN SOLUTION
    input_tokens = output_tokens = 0
    finish_reasons: dict[str, str | None] = {"draft": None, "final": None}
    async for event in events:
        call = "final" if "final" in event["tags"] else "draft"
        if event["event"] == "on_chat_model_stream" and call == "final":
            if text := event["data"]["chunk"].text:
                yield Token(text)
        elif event["event"] == "on_chat_model_end":
            message = event["data"]["output"]
            if message.usage_metadata:
                input_tokens += message.usage_metadata["input_tokens"]
                output_tokens += message.usage_metadata["output_tokens"]
            finish_reasons[call] = message.response_metadata.get("finish_reason")
    # The core keeps the last Usage it is given, as the bill: one, for both calls.
    yield Usage(input_tokens, output_tokens)
    # A draft cut short was rewritten into a short answer that ends normally: not complete.
    if finish_reasons["draft"] and finish_reasons["final"]:
        yield Finish(finish_reasons["final"])
    ### END SOLUTION


# %% end

# %% exercise: running_stats  check: lessons.toolkit.exercise_checks.nb03_langchain_chains:check_running_stats  candidate: running_stats
from collections.abc import AsyncIterator

from lessons.chain_streaming.chains import answer_stats


async def running_stats(pieces: AsyncIterator[str]) -> AsyncIterator[dict[str, int]]:
    """A step that streams: after each piece of the answer, answer_stats of the answer so far.

    In `build_answer_chain(llm) | running_stats` (LangChain wraps an async generator function
    in a RunnableGenerator), the chain's .astream yields stats while the model is still
    writing, and the last output is answer_stats of the whole answer.
    """
    ### BEGIN SOLUTION
    # answer_stats needs whole words: count over everything so far, not over the piece.
    answer = ""
    async for piece in pieces:
        answer += piece
        yield answer_stats(answer)
    ### END SOLUTION


# %% end
