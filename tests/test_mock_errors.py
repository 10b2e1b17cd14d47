"""Scripted errors reach the SDKs as the real APIs' errors do, unretried; bad requests get 400s."""

import json
import time
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from lessons.mock_providers import ANTHROPIC_ORGANIZATION, OPENAI_ORGANIZATION, Fault
from lessons.mock_providers.tokens import split_pieces
from tests.conftest_mock import (
    ANTHROPIC_MODEL,
    ML_PROMPT,
    OPENAI_MODEL,
    ServedMock,
    _mock_server,
    served,
    user,
)

# Fixtures, imported so that pytest finds them.
__all__ = ["_mock_server", "served"]


def chat_text(served: ServedMock, **options: Any) -> str:
    with served.openai_client(**options) as client:
        stream = client.chat.completions.create(
            model=OPENAI_MODEL, messages=user(ML_PROMPT), stream=True
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream)


def responses_text(served: ServedMock, **options: Any) -> str:
    with served.openai_client(**options) as client:
        stream = client.responses.create(model=OPENAI_MODEL, input=ML_PROMPT, stream=True)
        return "".join(e.delta for e in stream if e.type == "response.output_text.delta")


def anthropic_text(served: ServedMock, **options: Any) -> str:
    with (
        served.anthropic_client(**options) as client,
        client.messages.stream(
            model=ANTHROPIC_MODEL, max_tokens=500, messages=user(ML_PROMPT)
        ) as stream,
    ):
        return "".join(stream.text_stream)


# --- before the stream: HTTP errors -----------------------------------------------------------

OPENAI_HTTP_ERRORS = [
    (401, openai.AuthenticationError, "invalid_api_key"),
    (403, openai.PermissionDeniedError, "model_not_found"),
    (429, openai.RateLimitError, "rate_limit_exceeded"),
    (500, openai.InternalServerError, None),
    (503, openai.InternalServerError, None),
]
ANTHROPIC_HTTP_ERRORS = [
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "exception", "code"), OPENAI_HTTP_ERRORS)
@pytest.mark.parametrize("read", [chat_text, responses_text])
def test_openai_http_errors(
    served: ServedMock, read: Any, status: int, exception: type, code: str | None
) -> None:
    served.mock.script(Fault.http_error(status))
    # Default retries: x-should-retry: false must stop the SDK from retrying. The SDK sleeps
    # (0.5 s and more) only before a retry, so one request means no backoff sleep.
    with pytest.raises(exception) as caught:
        read(served, max_retries=2)
    error = caught.value
    assert error.status_code == status
    assert error.code == code
    assert error.request_id == served.mock.last_request().request_id
    assert set(error.body) == {"message", "type", "param", "code"}
    assert len(served.mock.requests) == 1, "a scripted error is never retried by surprise"
    assert error.response.headers["x-should-retry"] == "false"
    assert served.mock.last_request().outcome == "fault"


@pytest.mark.parametrize(("status", "exception", "error_type"), ANTHROPIC_HTTP_ERRORS)
def test_anthropic_http_errors(
    served: ServedMock, status: int, exception: type, error_type: str
) -> None:
    served.mock.script(Fault.http_error(status))
    with pytest.raises(exception) as caught:
        anthropic_text(served, max_retries=2)
    error = caught.value
    assert error.status_code == status
    request_id = served.mock.last_request().request_id
    assert error.request_id == request_id
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": error.body["error"]["message"]},
        "request_id": request_id,
    }
    assert len(served.mock.requests) == 1


def test_openai_429_carries_the_real_headers_and_internal_details(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(429, retry_after=20))
    response = served.http.post(
        "/v1/chat/completions",
        json={"model": OPENAI_MODEL, "messages": user(ML_PROMPT), "stream": True},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "20"
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert response.headers["x-request-id"] == served.mock.last_request().request_id
    error = response.json()["error"]
    assert error["type"] == "tokens"
    assert error["code"] == "rate_limit_exceeded"
    assert OPENAI_ORGANIZATION in error["message"], "real 429s name the organisation"


def test_anthropic_429_carries_the_real_headers_and_internal_details(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(429, retry_after=3))
    response = served.http.post(
        "/v1/messages",
        headers={"authorization": "Bearer test-key"},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 10, "messages": user(ML_PROMPT)},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["request-id"] == response.json()["request_id"]
    assert response.headers["anthropic-organization-id"] == ANTHROPIC_ORGANIZATION
    assert ANTHROPIC_ORGANIZATION in response.json()["error"]["message"]


def test_openai_500_names_the_request_id(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(500))
    with pytest.raises(openai.InternalServerError) as caught:
        chat_text(served)
    assert served.mock.last_request().request_id in caught.value.message


def test_retry_scenario_gets_the_scripted_error_once_then_succeeds(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(429, retry_after=0.01, should_retry=True), times=1)
    assert chat_text(served, max_retries=2) == served.mock.last_request().reply_text
    first, retry = served.mock.requests
    assert (first.outcome, first.status, retry.outcome) == ("fault", 429, "completed")
    assert retry.headers["x-stainless-retry-count"] == "1"


def test_should_retry_exhausts_the_sdk_retries(served: ServedMock) -> None:
    served.mock.script(Fault.http_error(529, retry_after=0.01, should_retry=True), times=None)
    with pytest.raises(anthropic.OverloadedError):
        anthropic_text(served, max_retries=2)
    assert len(served.mock.requests) == 3


# --- during the stream: error events ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["overloaded", "server_error"])
def test_openai_chat_error_event(served: ServedMock, kind: Any) -> None:
    served.mock.script(Fault.error_event(after_tokens=5, kind=kind))
    with served.openai_client(max_retries=2) as client:
        stream = client.chat.completions.create(
            model=OPENAI_MODEL, messages=user(ML_PROMPT), stream=True
        )
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            seen.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    # A mid-stream error is a plain APIError: no status, not retried.
    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.body["type"] == "server_error"
    observed = served.mock.last_request()
    assert "".join(seen) == "".join(split_pieces(observed.reply_text)[:5])
    assert observed.tokens_sent == 5
    assert observed.outcome == "fault"
    assert len(served.mock.requests) == 1


def test_openai_responses_error_event(served: ServedMock) -> None:
    served.mock.script(Fault.error_event(after_tokens=3))
    with pytest.raises(openai.APIError) as caught:
        responses_text(served)
    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.code == "server_error"
    assert served.mock.last_request().tokens_sent == 3


@pytest.mark.parametrize(
    ("kind", "error_type"), [("overloaded", "overloaded_error"), ("server_error", "api_error")]
)
def test_anthropic_error_event(served: ServedMock, kind: Any, error_type: str) -> None:
    served.mock.script(Fault.error_event(after_tokens=5, kind=kind))
    with (
        served.anthropic_client(max_retries=2) as client,
        client.messages.stream(
            model=ANTHROPIC_MODEL, max_tokens=500, messages=user(ML_PROMPT)
        ) as stream,
    ):
        seen: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as caught:
            seen.extend(stream.text_stream)
    # The HTTP status was 200: the SDK raises the generic class, classified by body type.
    assert type(caught.value) is anthropic.APIStatusError
    assert caught.value.status_code == 200
    assert caught.value.body["error"]["type"] == error_type
    assert len(seen) == 5 == served.mock.last_request().tokens_sent


def test_error_event_on_a_non_streaming_request_is_an_http_error(served: ServedMock) -> None:
    served.mock.script(Fault.error_event(after_tokens=5))
    with served.anthropic_client() as client, pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=user(ML_PROMPT))
    served.mock.script(Fault.error_event(after_tokens=5, kind="server_error"))
    with served.openai_client() as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=OPENAI_MODEL, messages=user(ML_PROMPT))


def test_fault_after_more_tokens_than_the_reply_still_fires(served: ServedMock) -> None:
    served.mock.script(Fault.error_event(after_tokens=10_000))
    with pytest.raises(openai.APIError):
        chat_text(served)
    observed = served.mock.last_request()
    assert observed.tokens_sent == observed.tokens_planned


# --- during the stream: a dropped connection --------------------------------------------------


def test_openai_drop_is_a_connection_error(served: ServedMock) -> None:
    served.mock.script(Fault.drop(after_tokens=3))
    with pytest.raises(openai.APIConnectionError):
        chat_text(served, max_retries=2)
    served.mock.script(Fault.drop(after_tokens=3))
    with pytest.raises(openai.APIConnectionError):
        responses_text(served)
    assert [r.tokens_sent for r in served.mock.requests] == [3, 3]
    assert len(served.mock.requests) == 2, "a stream already handed over is never retried"


def test_anthropic_drop_surfaces_the_transport_error(served: ServedMock) -> None:
    served.mock.script(Fault.drop(after_tokens=3))
    # anthropic 2.x does not wrap errors raised while reading a stream: the raw httpx2 error
    # comes through. Either class is what a relay must catch.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        anthropic_text(served)
    observed = served.mock.last_request()
    assert (observed.outcome, observed.tokens_sent) == ("fault", 3)


def test_drop_leaves_the_chunked_body_unterminated(served: ServedMock) -> None:
    served.mock.script(Fault.drop(after_tokens=2))
    received = b""
    with (
        served.http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": OPENAI_MODEL, "messages": user(ML_PROMPT), "stream": True},
        ) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        for chunk in response.iter_raw():
            received += chunk
    assert received.count(b'"content":') == 3, "the role chunk and two tokens"
    assert b"[DONE]" not in received


def test_drop_of_a_non_streaming_answer(served: ServedMock) -> None:
    served.mock.script(Fault.drop(after_tokens=0))
    with served.openai_client() as client, pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model=OPENAI_MODEL, messages=user(ML_PROMPT))


# --- during the stream: a stall ---------------------------------------------------------------


def test_stall_trips_the_client_read_timeout(served: ServedMock) -> None:
    served.mock.script(Fault.stall(after_tokens=2, seconds=5))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat_text(served, timeout=0.2)
    assert time.monotonic() - started < 1.5
    observed = served.mock.wait_until_finished(served.mock.last_request(), timeout=1)
    assert (observed.outcome, observed.tokens_sent) == ("client_disconnected", 2)


def test_stall_then_the_stream_carries_on(served: ServedMock) -> None:
    served.mock.script(Fault.stall(after_tokens=3, seconds=0.15))
    started = time.monotonic()
    text = chat_text(served)
    assert time.monotonic() - started >= 0.15
    assert text == served.mock.last_request().reply_text
    assert served.mock.last_request().outcome == "completed"


def test_stall_before_headers_times_out_the_call_that_opens_the_stream(
    served: ServedMock,
) -> None:
    served.mock.script(Fault.stall(after_tokens=0, seconds=5, before_headers=True))
    with (
        served.openai_client(timeout=0.2) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(model=OPENAI_MODEL, messages=user(ML_PROMPT), stream=True)


# --- bad requests -----------------------------------------------------------------------------

OPENAI_BAD_BODIES = [
    (b"{not json", None, None),
    (json.dumps({"messages": user("hi")}).encode(), None, None),
    (json.dumps({"model": OPENAI_MODEL, "messages": []}).encode(), "messages", "empty_array"),
    (
        json.dumps({"model": OPENAI_MODEL}).encode(),
        "messages",
        "missing_required_parameter",
    ),
    (
        json.dumps({"model": OPENAI_MODEL, "messages": [{"content": "hi"}]}).encode(),
        "messages[0].role",
        "missing_required_parameter",
    ),
]


@pytest.mark.parametrize(("body", "param", "code"), OPENAI_BAD_BODIES)
def test_chat_bad_requests(served: ServedMock, body: bytes, param: str | None, code: str) -> None:
    response = served.http.post("/v1/chat/completions", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert response.headers["x-request-id"].startswith("req_")
    assert served.mock.last_request().outcome == "rejected"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The request body is not valid JSON: "),
        ({"max_tokens": 10, "messages": user("hi")}, "model: Field required"),
        ({"model": ANTHROPIC_MODEL, "messages": user("hi")}, "max_tokens: Field required"),
        (
            {"model": ANTHROPIC_MODEL, "max_tokens": 10, "messages": []},
            "messages: at least one message is required",
        ),
    ],
)
def test_anthropic_bad_requests(served: ServedMock, body: Any, message: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = served.http.post("/v1/messages", content=content)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["message"].startswith(message)
    assert payload["request_id"] == response.headers["request-id"]


def test_bad_requests_through_the_sdks(served: ServedMock) -> None:
    with served.openai_client() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=OPENAI_MODEL, messages=[], stream=True)
    assert caught.value.code == "empty_array"
    with served.openai_client() as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=OPENAI_MODEL, input=[], stream=True)
    assert caught.value.param == "input"
    with served.anthropic_client() as client, pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=[])


def test_unknown_paths_get_each_providers_404(served: ServedMock) -> None:
    openai_404 = served.http.get("/v1/models/nope")
    assert openai_404.status_code == 404
    assert openai_404.json()["error"]["message"] == "Invalid URL (GET /v1/models/nope)"
    anthropic_404 = served.http.get("/v1/messages")
    assert anthropic_404.status_code == 404
    assert anthropic_404.json()["error"]["type"] == "not_found_error"
    assert served.mock.requests == []
