"""The error contract's classification, messages and logging, unit by unit (the fault matrix
in test_nb05_fault_matrix.py checks the same contract end to end through every relay)."""

from __future__ import annotations

import json
import logging

import anthropic
import httpx2
import openai
import pytest

from lessons.relay_core import (
    ErrorCode,
    classify_before_stream,
    classify_during_stream,
    error_response,
    sse_comment,
    sse_data,
    sse_event,
)

SECRET = "org-internal-42 req_provider_1234 sk-secret"
REQUEST = httpx2.Request("POST", "https://provider.example/v1/x")


def make_status_error(sdk, status: int, body: dict, headers: dict | None = None):
    request = httpx2.Request("POST", "https://provider.example/v1/x")
    response = httpx2.Response(status, headers=headers or {}, request=request, json=body)
    client = sdk.OpenAI(api_key="x") if sdk is openai else sdk.Anthropic(api_key="x")
    return client._make_status_error(SECRET, body=body, response=response)


OVERLOADED = {"type": "error", "error": {"type": "overloaded_error"}}


@pytest.mark.parametrize(
    ("sdk", "status", "body", "code", "http_status"),
    [
        (openai, 429, {"error": {"message": SECRET}}, ErrorCode.RATE_LIMITED, 429),
        (openai, 401, {"error": {"code": "invalid_api_key"}}, ErrorCode.PROVIDER_AUTH, 502),
        (openai, 500, {"error": {"type": "server_error"}}, ErrorCode.PROVIDER_ERROR, 502),
        (openai, 503, {"error": {"type": "server_error"}}, ErrorCode.PROVIDER_OVERLOADED, 503),
        (openai, 400, {"error": {"type": "invalid"}}, ErrorCode.PROVIDER_REJECTED, 502),
        (anthropic, 529, OVERLOADED, ErrorCode.PROVIDER_OVERLOADED, 503),
        (anthropic, 403, {"error": {"type": "permission_error"}}, ErrorCode.PROVIDER_AUTH, 502),
        (anthropic, 429, {"error": {"type": "rate_limit_error"}}, ErrorCode.RATE_LIMITED, 429),
    ],
)  # fmt: skip
def test_http_errors_before_the_stream(sdk, status, body, code, http_status) -> None:
    headers = {"retry-after": "7"} if status == 429 else {}
    error = classify_before_stream(make_status_error(sdk, status, body, headers), "req_ours")
    assert (error.code, error.status) == (code, http_status)
    response = error_response(error)
    assert response.status_code == http_status
    assert json.loads(response.body) == {
        "error": {"code": code, "message": error.message, "request_id": "req_ours"}
    }
    assert response.headers.get("retry-after") == ("7" if status == 429 else None)
    assert "internal" not in response.body.decode() and "sk-" not in response.body.decode()


def test_unreachable_and_timeout_before_the_stream() -> None:
    request = httpx2.Request("POST", "https://provider.example/v1/x")
    unreachable = openai.APIConnectionError(request=request)
    timeout = anthropic.APITimeoutError(request=request)
    assert classify_before_stream(unreachable, "r").status == 503
    assert classify_before_stream(timeout, "r").status == 504


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (openai.APIError("boom", REQUEST, body={"type": "server_error"}), ErrorCode.PROVIDER_ERROR),
        (httpx2.RemoteProtocolError("peer closed connection"), ErrorCode.STREAM_INTERRUPTED),
        (httpx2.ReadTimeout("read timed out"), ErrorCode.PROVIDER_TIMEOUT),
        (RuntimeError("our own bug"), ErrorCode.INTERNAL),
    ],
)  # fmt: skip
def test_errors_during_the_stream(exc: BaseException, code: ErrorCode) -> None:
    assert classify_during_stream(exc, "r").code == code


def test_anthropic_overload_mid_stream_is_classified_by_its_body() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    exc = make_status_error(anthropic, 200, body)
    assert classify_during_stream(exc, "r").code == ErrorCode.PROVIDER_OVERLOADED


def test_details_go_to_the_log_with_the_request_id_never_to_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exc = make_status_error(openai, 500, {"error": {"message": SECRET}})
    with caplog.at_level(logging.WARNING, logger="lessons.relay"):
        error = classify_before_stream(exc, "req_ours")
    assert "req_ours" in caplog.text and "org-internal-42" in caplog.text
    assert SECRET not in error.message
    # The record keeps a string, not the exception (which would pin the failed stream in memory).
    assert all(not isinstance(arg, BaseException) for r in caplog.records for arg in r.args)


def test_sse_framing() -> None:
    assert sse_data({"token": "a\n\nb"}) == 'data: {"token":"a\\n\\nb"}\n\n'
    assert (
        sse_event("token", {"text": "hi"}, event_id=3)
        == 'id: 3\nevent: token\ndata: {"text":"hi"}\n\n'
    )
    assert sse_comment() == ": ping\n\n"
    with pytest.raises(ValueError):
        sse_event("bad\nname", {})
