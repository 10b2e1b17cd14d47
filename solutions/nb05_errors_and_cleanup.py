"""Solutions for notebook 05 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402, F811
# %% exercise: reasoning_deadlines  check: lessons.toolkit.exercise_checks.nb05_errors_and_cleanup:check_reasoning_deadlines
from lessons.relay_core import RelaySettings


def reasoning_relay_settings() -> RelaySettings:
    """The limits of a relay to a reasoning model behind a load balancer (the requirements are
    listed above the cell). Leave the settings the requirements do not mention at their defaults."""
    ### BEGIN SOLUTION
    return RelaySettings(
        # The balancer cuts after 4 s without a byte: a comment well before that, in every phase
        # (the wait for the first token included), whatever the model does.
        keepalive_interval_s=3.0,
        # The first token is a phase of its own: a slow thinker gets 60 s here ...
        first_token_timeout_s=60.0,
        # ... while a reply that has started is stuck after 12 s of silence.
        idle_timeout_s=12.0,
        # Ten-minute replies are normal; fifteen minutes is the cap for any reply.
        total_timeout_s=900.0,
        # A client that stops reading holds a slot and the provider: give up on it within 8 s.
        send_timeout_s=8.0,
    )
    ### END SOLUTION


# %% end

# %% exercise: retry_after_leaving  check: lessons.toolkit.exercise_checks.nb05_errors_and_cleanup:check_retry_after_leaving
import contextlib
import time
from typing import Any

import httpx

from lessons.mock_providers import Fault


def retry_was_cancelled(url: str, mock: Any) -> bool:
    """Make the provider refuse the first attempt with a 429 that the SDK retries after 0.5 s,
    POST {"message": "What is machine learning?"} to `url` + "/chat/stream", leave while the SDK
    waits to retry, and return True only if, by the mock's own record, no retry reached it."""
    ### BEGIN SOLUTION
    mock.script(Fault.http_error(429, retry_after=0.5, should_retry=True))
    # A read timeout shorter than the back-off: the client hangs up while the SDK waits.
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(f"{url}/chat/stream", json={"message": "What is machine learning?"}, timeout=0.2)
    # The retry would arrive 0.5 s after the first attempt: look only once that moment is past.
    time.sleep(1.0)
    return len(mock.requests) == 1
    ### END SOLUTION


# %% end

# %% exercise: budgets_per_worker  check: lessons.toolkit.exercise_checks.nb05_errors_and_cleanup:check_budgets_per_worker
import httpx


def streams_at_once(urls: list[str], token: str) -> int:
    """How many streams the client with this bearer `token` can hold open at the same time across
    the servers at `urls` (each runs the protected relay): open streams to each server, holding
    them, until it refuses one (at most 20 per server); close them all; return how many opened."""
    ### BEGIN SOLUTION
    headers = {"Authorization": f"Bearer {token}"}
    body = {"message": "What is machine learning?"}
    held: list[httpx.Response] = []
    with httpx.Client(timeout=5) as client:
        try:
            for url in urls:
                for _ in range(20):
                    request = client.build_request(
                        "POST", f"{url}/chat/stream", json=body, headers=headers
                    )
                    # stream=True: the status is known as soon as the headers arrive, and the
                    # stream stays open (and counted against the client) until it is closed.
                    response = client.send(request, stream=True)
                    if response.status_code != 200:
                        response.close()
                        break
                    held.append(response)
        finally:
            for response in held:
                response.close()
    return len(held)
    ### END SOLUTION


# %% end
