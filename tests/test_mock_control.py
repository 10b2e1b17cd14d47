"""The mock's Python control API: timing, rules that target requests, observations, disconnects."""

import asyncio
import itertools
import threading
import time
from typing import Any

import httpx
import pytest

from lessons.mock_providers import CANNED_REPLIES, PERTURB_ENV, Fault, MockProviders
from lessons.mock_providers.tokens import split_pieces
from tests.conftest_mock import (
    ANTHROPIC_MODEL,
    HELLO_PROMPT,
    ML_PROMPT,
    OPENAI_MODEL,
    ServedMock,
    _mock_server,
    served,
    user,
)

# Fixtures, imported so that pytest finds them.
__all__ = ["_mock_server", "served"]

CHAT = "/v1/chat/completions"


def chat_body(prompt: str = ML_PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": OPENAI_MODEL, "messages": user(prompt), "stream": True, **extra}


def token_arrivals(served: ServedMock, prompt: str = HELLO_PROMPT) -> list[float]:
    """Seconds from sending the request to each content token's arrival at the client."""
    arrivals: list[float] = []
    started = time.monotonic()
    with served.http.stream("POST", CHAT, json=chat_body(prompt)) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.monotonic() - started)
    return arrivals


def chat_text(served: ServedMock, prompt: str = ML_PROMPT, model: str = OPENAI_MODEL) -> str:
    with served.openai_client() as client:
        stream = client.chat.completions.create(model=model, messages=user(prompt), stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream)


# --- replies ----------------------------------------------------------------------------------


def test_same_request_same_stream_and_other_prompts_get_readable_replies(
    served: ServedMock,
) -> None:
    first = chat_text(served, "Tell me about the tides")
    assert first == chat_text(served, "Tell me about the tides")
    assert first.startswith('You asked: "Tell me about the tides".')
    assert first != chat_text(served, "Tell me about volcanoes")
    assert 30 <= len(split_pieces(first)) <= 80
    assert chat_text(served, "  say HELLO. ") == CANNED_REPLIES["say hello."]


def test_script_reply_replaces_the_text(served: ServedMock) -> None:
    served.mock.script(reply="Forty-two.", times=None)
    assert chat_text(served) == "Forty-two."
    assert chat_text(served) == "Forty-two."
    observed = served.mock.last_request()
    assert observed.tokens_planned == len(split_pieces("Forty-two.")) == observed.tokens_sent


def test_perturb_environment_variable_changes_every_reply(
    served: ServedMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PERTURB_ENV, "1")
    perturbed = MockProviders()
    assert perturbed.perturb
    served.mock.perturb = perturbed.perturb
    assert chat_text(served, HELLO_PROMPT) == "Hello! How can I help you PERTURBED?"


# --- timing -----------------------------------------------------------------------------------


def test_zero_delay_by_default(served: ServedMock) -> None:
    arrivals = token_arrivals(served, ML_PROMPT)
    assert arrivals[-1] < 0.5
    assert served.mock.last_request().ttft < 0.01


def test_server_wide_timing(served: ServedMock) -> None:
    served.mock.set_timing(ttft_ms=100, token_interval_ms=20)
    arrivals = token_arrivals(served)
    assert len(arrivals) == len(split_pieces(CANNED_REPLIES["say hello."]))
    assert 0.1 <= arrivals[0] < 0.2
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert 0.018 <= sum(gaps) / len(gaps) <= 0.03
    observed = served.mock.last_request()
    assert 0.1 <= observed.ttft < 0.11, "the mock sends the first token on schedule"


def test_rule_timing_applies_to_its_requests_only(served: ServedMock) -> None:
    served.mock.script(prompt_contains="slowly", ttft_ms=150, times=None)
    assert token_arrivals(served, "Answer slowly please.")[0] >= 0.15
    assert token_arrivals(served, "Answer fast please.")[0] < 0.1


def test_set_timing_keeps_the_value_not_given_and_reset_restores(served: ServedMock) -> None:
    mock = MockProviders(ttft_ms=5, token_interval_ms=7)
    mock.set_timing(ttft_ms=400)
    assert (mock.ttft_ms, mock.token_interval_ms) == (400, 7)
    mock.reset()
    assert (mock.ttft_ms, mock.token_interval_ms) == (5, 7)
    with pytest.raises(ValueError):
        mock.set_timing(token_interval_ms=-1)


def test_a_non_streaming_answer_arrives_when_the_last_token_would(served: ServedMock) -> None:
    served.mock.set_timing(ttft_ms=50, token_interval_ms=10)
    started = time.monotonic()
    with served.openai_client() as client:
        client.chat.completions.create(model=OPENAI_MODEL, messages=user(HELLO_PROMPT))
    tokens = len(split_pieces(CANNED_REPLIES["say hello."]))
    assert time.monotonic() - started >= 0.05 + (tokens - 1) * 0.01


# --- rules ------------------------------------------------------------------------------------


def test_rules_target_requests_by_prompt_model_and_endpoint(served: ServedMock) -> None:
    mock = served.mock
    by_prompt = mock.script(Fault.http_error(500), prompt_contains="FAIL-ME", times=None)
    by_model = mock.script(Fault.http_error(503), model="gpt-broken", times=None)
    by_endpoint = mock.script(Fault.http_error(529), endpoint="messages", times=None)
    statuses = [
        served.http.post(CHAT, json=chat_body(prompt)).status_code
        for prompt in ("fine", "please FAIL-ME now", "fine again")
    ]
    assert statuses == [200, 500, 200]
    broken = chat_body(model="gpt-broken")
    assert served.http.post(CHAT, json=broken).status_code == 503
    anthropic_body = {"model": ANTHROPIC_MODEL, "max_tokens": 5, "messages": user("hi")}
    assert served.http.post("/v1/messages", json=anthropic_body).status_code == 529
    assert (by_prompt.used, by_model.used, by_endpoint.used) == (1, 1, 1)


def test_times_limits_a_rule_and_rules_apply_in_order(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(429), times=2)
    served.mock.script(Fault.http_error(500), times=1)
    statuses = [served.http.post(CHAT, json=chat_body()).status_code for _ in range(4)]
    assert statuses == [429, 429, 500, 200]
    assert [rule.exhausted for rule in served.mock.rules] == [True, True]


def test_a_rule_targets_one_of_two_concurrent_streams(served: ServedMock) -> None:
    served.mock.set_timing(token_interval_ms=5)
    served.mock.script(Fault.error_event(after_tokens=2), prompt_contains="victim")

    async def both() -> list[bytes]:
        async with httpx.AsyncClient(base_url=served.url) as client:

            async def read(prompt: str) -> bytes:
                response = await client.post(CHAT, json=chat_body(prompt))
                return response.content

            return await asyncio.gather(read("the victim"), read("the bystander"))

    victim, bystander = asyncio.run(both())
    assert b'"error"' in victim and b"[DONE]" not in victim
    assert b'"error"' not in bystander and bystander.endswith(b"data: [DONE]\n\n")


def test_reset_forgets_rules_and_observations(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(500), times=None)
    served.mock.reset()
    assert served.http.post(CHAT, json=chat_body()).status_code == 200
    served.mock.reset()
    assert served.mock.requests == [] and served.mock.rules == []
    with pytest.raises(LookupError):
        served.mock.last_request()


def test_bad_scripts_are_refused() -> None:
    mock = MockProviders()
    with pytest.raises(ValueError):
        mock.script(endpoint="chat")
    with pytest.raises(ValueError):
        mock.script(times=0)
    with pytest.raises(ValueError):
        Fault.http_error(200)
    with pytest.raises(ValueError):
        Fault.error_event(after_tokens=1, kind="teapot")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault.drop(after_tokens=-1)


# --- observations -----------------------------------------------------------------------------


def test_observations_of_each_endpoint(served: ServedMock) -> None:
    with served.openai_client() as client:
        client.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "system", "content": "Be brief."}, *user(HELLO_PROMPT)],
        )
        client.responses.create(model=OPENAI_MODEL, input=HELLO_PROMPT, stream=True).close()
    with served.anthropic_client() as client:
        client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=50, system="Be kind.", messages=user(HELLO_PROMPT)
        )
    chat, responses, messages = (
        served.mock.wait_until_finished(request) for request in served.mock.requests
    )
    assert (chat.endpoint, chat.provider, chat.model, chat.stream) == (
        "chat.completions",
        "openai",
        OPENAI_MODEL,
        False,
    )
    assert chat.messages[1] == user(HELLO_PROMPT)[0]
    assert chat.system == "Be brief."
    assert (responses.endpoint, responses.messages, responses.stream) == (
        "responses",
        HELLO_PROMPT,
        True,
    )
    assert (messages.endpoint, messages.provider, messages.system) == (
        "messages",
        "anthropic",
        "Be kind.",
    )
    assert messages.messages == user(HELLO_PROMPT)
    for observed in (chat, messages):
        assert observed.outcome == "completed"
        assert observed.tokens_sent == observed.tokens_planned > 0
        assert observed.started_at <= observed.first_token_at <= observed.finished_at
        assert observed.disconnected_at is None
    assert [r.id for r in served.mock.requests] == [1, 2, 3]
    assert "test-key" not in str(served.mock.requests), "API keys are masked"


def test_requests_are_snapshots(served: ServedMock) -> None:
    served.mock.set_timing(token_interval_ms=5)
    with served.http.stream("POST", CHAT, json=chat_body()) as response:
        lines = response.iter_lines()
        while '"content":"M' not in next(lines):
            pass
        early = served.mock.last_request()
        assert early.outcome == "in_progress"
        for _ in lines:
            pass
    final = served.mock.wait_until_finished(early, timeout=2)
    assert early.outcome == "in_progress" and early.finished_at is None
    assert final.outcome == "completed" and final.tokens_sent == final.tokens_planned


def test_wait_until_finished_times_out_on_a_stalled_stream(served: ServedMock) -> None:
    served.mock.script(Fault.stall(after_tokens=1, seconds=0.3))
    with served.http.stream("POST", CHAT, json=chat_body()) as response:
        # Keep the iterator: dropping it would close the response, and so the connection.
        chunks = response.iter_raw()
        next(chunks)
        with pytest.raises(TimeoutError):
            served.mock.wait_until_finished(served.mock.last_request(), timeout=0.05)
        observed = served.mock.wait_until_finished(served.mock.last_request(), timeout=2)
    assert observed.outcome == "completed"


def test_wait_for_requests_from_another_thread(served: ServedMock) -> None:
    sender = threading.Timer(0.05, lambda: served.http.post(CHAT, json=chat_body(stream=False)))
    sender.start()
    (request,) = served.mock.wait_for_requests(1, timeout=2)
    sender.join()
    assert request.endpoint == "chat.completions"


# --- a client that goes away ------------------------------------------------------------------


def test_a_gone_client_is_noticed_within_milliseconds_and_generation_stops(
    served: ServedMock,
) -> None:
    served.mock.set_timing(token_interval_ms=20)

    async def read_three_tokens_then_leave() -> float:
        async with served.async_openai_client() as client:
            stream = await client.chat.completions.create(
                model=OPENAI_MODEL, messages=user(ML_PROMPT), stream=True
            )
            seen = 0
            async for chunk in stream:
                seen += bool(chunk.choices[0].delta.content)
                if seen == 3:
                    break
            await stream.close()
            return time.monotonic()

    left_at = asyncio.run(read_three_tokens_then_leave())
    observed = served.mock.wait_until_finished(served.mock.last_request(), timeout=1)
    assert observed.outcome == "client_disconnected"
    assert observed.disconnected_at is not None
    assert observed.disconnected_at - left_at < 0.02
    assert 3 <= observed.tokens_sent <= 4 < observed.tokens_planned
    time.sleep(0.1)
    assert served.mock.last_request().tokens_sent == observed.tokens_sent, "generation stopped"


def test_a_client_gone_during_a_stall_is_noticed(served: ServedMock) -> None:
    served.mock.script(Fault.stall(after_tokens=2, seconds=10))
    with served.http.stream("POST", CHAT, json=chat_body()) as response:
        chunks = response.iter_raw()
        next(chunks)
        time.sleep(0.05)
        assert served.mock.last_request().outcome == "in_progress"
    left_at = time.monotonic()
    observed = served.mock.wait_until_finished(served.mock.last_request(), timeout=1)
    assert observed.outcome == "client_disconnected"
    assert observed.disconnected_at is not None and observed.disconnected_at - left_at < 0.02
    assert observed.tokens_sent == 2
