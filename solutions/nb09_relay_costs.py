"""Solutions for notebook 09 (the learner's stubs are generated from the regions below)."""
# ruff: noqa: E402  (each exercise region is a notebook cell of its own: it imports what it uses)

from __future__ import annotations

# %% exercise: predict_p99  check: lessons.toolkit.exercise_checks.nb09_relay_costs:check_predict_p99


def predict_p99_first_token_ms(
    cpu_ms_per_request: float, streams: int, provider_ttft_ms: float
) -> float:
    """The 99th-percentile time to first token when `streams` requests arrive together at a
    relay on one core, each costing `cpu_ms_per_request` of CPU before its first token, from a
    provider that answers in `provider_ttft_ms`."""
    ### BEGIN SOLUTION
    # The provider works on all of them at once; the relay's CPU does not: the requests queue
    # for the one core, and the 99th percentile waits for 99% of the others' work first.
    return provider_ttft_ms + 0.99 * streams * cpu_ms_per_request
    ### END SOLUTION


# %% end

# %% exercise: tasks_per_token  check: lessons.toolkit.exercise_checks.nb09_relay_costs:check_tasks_per_token
from lessons.toolkit.costs import TaskCounter
from lessons.toolkit.testkit import collect_sync


def tasks_per_token(counter: TaskCounter, url: str) -> float:
    """How many asyncio tasks the relay at `url` (served through `counter`) creates for each
    token of a reply: POST `{url}/chat/stream` with `{"message": ...}`; the mock answers
    "short" with 6 tokens and "long" with about 490."""

    ### BEGIN SOLUTION
    # A stream has fixed tasks (the request's, the watchdog...) and maybe some per token: two
    # lengths tell them apart, as two points give a line's slope.
    def one(message: str) -> tuple[int, int]:
        records: list = []
        tasks = counter.count(
            lambda: records.append(collect_sync(f"{url}/chat/stream", {"message": message}))
        )
        return tasks, len(records[0].events)

    short_tasks, short_events = one("short")
    long_tasks, long_events = one("long")
    return (long_tasks - short_tasks) / (long_events - short_events)
    ### END SOLUTION


# %% end

# %% exercise: fast_responses  check: lessons.toolkit.exercise_checks.nb09_relay_costs:check_fast_responses
from typing import Any

from lessons.relay_core import ErrorCode, Finish, StreamFailed, StreamItem, Token, Usage


def responses_items(event: dict[str, Any], items: list[StreamItem]) -> None:
    """The fast path for the Responses API: append to `items` what one parsed `data:` payload
    of a Responses stream means for the relay (text, usage, the end marker), as the SDK-based
    adapter `relay_core.adapters.openai_responses_events` does (tool calls may be left out)."""
    ### BEGIN SOLUTION
    kind = event.get("type")
    if kind == "response.output_text.delta":
        if event.get("delta"):
            items.append(Token(event["delta"]))
    elif kind in ("response.completed", "response.incomplete"):
        response = event.get("response") or {}
        usage = response.get("usage")
        if usage:
            items.append(Usage(usage["input_tokens"], usage["output_tokens"]))
        if kind == "response.incomplete":
            reason = (response.get("incomplete_details") or {}).get("reason")
            items.append(Finish("content_filter" if reason == "content_filter" else "length"))
        else:
            items.append(Finish("stop"))
    elif kind in ("response.failed", "error"):
        # A failure is the stream's end too, but not a reply: never a Finish.
        raise StreamFailed(ErrorCode.PROVIDER_ERROR, f"Responses stream: {kind}")
    ### END SOLUTION


# %% end
