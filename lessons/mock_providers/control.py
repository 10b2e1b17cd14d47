"""MockProviders: the Python control API (timing, scripted faults, observations) of the mock."""

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from lessons.mock_providers.app import MockApp
from lessons.mock_providers.conversation import BadRequest
from lessons.mock_providers.faults import Fault, Rule
from lessons.mock_providers.observed import ObservedRequest, Outcome
from lessons.mock_providers.replies import compose_reply
from lessons.mock_providers.tokens import count_input_tokens
from lessons.mock_providers.wire import Dialect, ErrorResponse, IdSource, ReplyContext, mask_key

PERTURB_ENV = "WORKBOOK_MOCK_PERTURB"
_SECRET_HEADERS = ("authorization", "x-api-key")


@dataclass(frozen=True)
class Admission:
    """The mock's decision about one request: an immediate answer, or a reply to send."""

    dialect: Dialect
    record: ObservedRequest
    response: ErrorResponse | None = None
    ctx: ReplyContext | None = None
    fault: Fault | None = None
    ttft: float = 0.0
    interval: float = 0.0


class MockProviders:
    """Fake OpenAI and Anthropic APIs; serve `mock.app` with any ASGI server.

    Safe to use from another thread than the server's: a notebook reads observations and
    scripts faults while uvicorn runs the app in a background thread.
    """

    def __init__(
        self,
        ttft_ms: float = 0,
        token_interval_ms: float = 0,
        *,
        seed: str = "mock",
        created: int | None = None,
    ) -> None:
        """`seed` and the request count derive every id; `created` fixes timestamps (else now)."""
        _check_timing(ttft_ms, token_interval_ms)
        self._default_timing = (float(ttft_ms), float(token_interval_ms))
        self._timing = self._default_timing
        self._seed = seed
        self._created = created
        # Set only by the test that proves notebook output checks notice a changed reply.
        self.perturb = os.environ.get(PERTURB_ENV) == "1"
        self._changed = threading.Condition(threading.Lock())
        self._rules: list[Rule] = []
        self._requests: list[ObservedRequest] = []
        self._count = 0
        self.app = MockApp(self)

    # --- timing -------------------------------------------------------------------------------

    @property
    def ttft_ms(self) -> float:
        return self._timing[0]

    @property
    def token_interval_ms(self) -> float:
        return self._timing[1]

    def set_timing(
        self, ttft_ms: float | None = None, token_interval_ms: float | None = None
    ) -> None:
        """Server-wide pace for requests that arrive from now on; None keeps a value."""
        with self._changed:
            ttft = self._timing[0] if ttft_ms is None else float(ttft_ms)
            interval = self._timing[1] if token_interval_ms is None else float(token_interval_ms)
            _check_timing(ttft, interval)
            self._timing = (ttft, interval)

    # --- scripting ----------------------------------------------------------------------------

    def script(
        self,
        fault: Fault | None = None,
        prompt_contains: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        times: int | None = 1,
        ttft_ms: float | None = None,
        token_interval_ms: float | None = None,
        reply: str | tuple[str, ...] | None = None,
        *,
        provider: str | None = None,
        interleave_tool_calls: bool = False,
    ) -> Rule:
        """Script what matching requests get; the first rule that matches a request answers it.

        A request matches when every criterion given holds: `prompt_contains` is a substring
        of its messages' text (system included), `model`, `endpoint` ("chat.completions",
        "responses", "messages") and `provider` ("openai", "anthropic") are equal. A rule
        answers `times` requests (None: all of them), then is skipped. `reply` replaces the
        reply's text; a tuple of strings gives its exact token pieces instead (very large pieces
        make a short reply of many megabytes, for tests of a client that stops reading).
        `interleave_tool_calls` sends the argument fragments of parallel tool calls in turn
        (call 0, call 1, call 0, ...) instead of one call after the other (Chat Completions and
        Responses; real OpenAI streams are sequential, some compatible servers interleave).
        """
        if ttft_ms is not None or token_interval_ms is not None:
            _check_timing(ttft_ms or 0, token_interval_ms or 0)
        rule = Rule(
            fault=fault,
            prompt_contains=prompt_contains,
            model=model,
            endpoint=endpoint,
            provider=provider,
            times=times,
            ttft_ms=ttft_ms,
            token_interval_ms=token_interval_ms,
            reply=reply,
            interleave_tool_calls=interleave_tool_calls,
        )
        with self._changed:
            self._rules.append(rule)
        return rule

    @property
    def rules(self) -> list[Rule]:
        with self._changed:
            return list(self._rules)

    def reset(self) -> None:
        """Forget rules and observations and restore the constructor's timing."""
        with self._changed:
            self._rules.clear()
            self._requests.clear()
            self._timing = self._default_timing
            self._changed.notify_all()

    # --- observations -------------------------------------------------------------------------

    @property
    def requests(self) -> list[ObservedRequest]:
        """Every request so far, oldest first, as snapshots that later events do not change."""
        with self._changed:
            return [dataclasses.replace(record) for record in self._requests]

    def last_request(self) -> ObservedRequest:
        """The newest request; raises LookupError when there is none."""
        with self._changed:
            if not self._requests:
                raise LookupError("the mock has not received any request yet")
            return dataclasses.replace(self._requests[-1])

    def wait_until_finished(
        self, request: ObservedRequest | int, timeout: float = 2.0
    ) -> ObservedRequest:
        """Block until the mock has stopped answering `request`; return its final snapshot.

        Raises TimeoutError if it is still streaming after `timeout` seconds.
        """
        wanted = request if isinstance(request, int) else request.id
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                record = next((r for r in self._requests if r.id == wanted), None)
                if record is None:
                    raise LookupError(f"no request with id {wanted}")
                if record.finished_at is not None:
                    return dataclasses.replace(record)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"request {wanted} still {record.outcome} after {timeout} s "
                        f"({record.tokens_sent} of {record.tokens_planned} tokens sent)"
                    )
                self._changed.wait(remaining)

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> list[ObservedRequest]:
        """Block until at least `count` requests have arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(self._requests)} requests after {timeout} s, expected {count}"
                    )
                self._changed.wait(remaining)
            return [dataclasses.replace(record) for record in self._requests]

    # --- used by the ASGI app -----------------------------------------------------------------

    def _ids(self) -> IdSource:
        with self._changed:
            self._count += 1
            return IdSource(self._seed, self._count)

    def _admit(
        self,
        dialect: Dialect,
        raw_body: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> Admission:
        """Decide how to answer a request and record it."""
        ids = self._ids()
        request_id = dialect.request_id(ids)
        headers = _header_dict(raw_headers)
        api_key = _api_key(headers)
        body, error = _json_object(dialect, raw_body)
        messages, system = dialect.observed(body) if body is not None else (None, None)
        record = ObservedRequest(
            id=ids.number,
            endpoint=dialect.endpoint,
            provider=dialect.provider,
            model=_model(body),
            messages=messages,
            stream=bool(body and body.get("stream") is True),
            started_at=started,
            system=system,
            request_id=request_id,
            headers=_masked(headers),
            body=body,
        )
        if error is None and body is not None:
            try:
                conversation = dialect.parse(body)
            except BadRequest as bad:
                error = bad
        if error is not None:
            record.status = 400
            record.outcome = "rejected"
            record.finished_at = time.monotonic()
            self._add(record)
            return Admission(dialect, record, response=dialect.bad_request(error, request_id))

        with self._changed:
            rule = next(
                (
                    r
                    for r in self._rules
                    if r.matches(
                        dialect.endpoint,
                        dialect.provider,
                        conversation.model,
                        conversation.all_text,
                    )
                ),
                None,
            )
            if rule is not None:
                rule.used += 1
            ttft_ms, interval_ms = self._timing
        if rule is not None:
            ttft_ms = ttft_ms if rule.ttft_ms is None else rule.ttft_ms
            interval_ms = interval_ms if rule.token_interval_ms is None else rule.token_interval_ms
        fault = rule.fault if rule is not None else None
        reply = compose_reply(conversation, rule.reply if rule else None, self.perturb)
        ctx = ReplyContext(
            conversation=conversation,
            reply=reply,
            ids=ids,
            request_id=request_id,
            created=self._created if self._created is not None else int(time.time()),
            input_tokens=count_input_tokens(conversation.message_texts),
            body=body,
            api_key=api_key,
            interleave_tool_calls=rule.interleave_tool_calls if rule is not None else False,
        )
        record.tokens_planned = reply.output_tokens
        record.reply_text = reply.full_text
        record.input_tokens = ctx.input_tokens
        record.fault = fault
        response = None
        if fault is not None and fault.kind == "http_error":
            assert fault.status is not None
            response = dialect.http_error(
                fault.status,
                request_id,
                model=conversation.model,
                api_key=api_key,
                retry_after=fault.retry_after,
                should_retry=fault.should_retry,
            )
            record.status = fault.status
            record.outcome = "fault"
            record.finished_at = time.monotonic()
        self._add(record)
        return Admission(
            dialect,
            record,
            response=response,
            ctx=ctx,
            fault=fault,
            ttft=ttft_ms / 1000,
            interval=interval_ms / 1000,
        )

    def _add(self, record: ObservedRequest) -> None:
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()

    def _progress(self, record: ObservedRequest, tokens: int, now: float) -> None:
        """`tokens` more tokens have been handed to the server for sending."""
        with self._changed:
            if record.first_token_at is None:
                record.first_token_at = now
            record.tokens_sent += tokens

    def _finish(
        self,
        record: ObservedRequest,
        outcome: Outcome,
        now: float,
        *,
        status: int | None = None,
        disconnected: bool = False,
    ) -> None:
        with self._changed:
            if record.finished_at is not None:
                return
            record.outcome = outcome
            record.finished_at = now
            if disconnected:
                record.disconnected_at = now
            if status is not None:
                record.status = status
            self._changed.notify_all()


def _check_timing(ttft_ms: float, token_interval_ms: float) -> None:
    if ttft_ms < 0 or token_interval_ms < 0:
        raise ValueError("timings cannot be negative")


def _header_dict(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw_headers}


def _api_key(headers: dict[str, str]) -> str | None:
    # anthropic 2.x sends its key as a Bearer token, 0.x as x-api-key: accept both.
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return headers.get("x-api-key")


def _masked(headers: dict[str, str]) -> dict[str, str]:
    # A learner's real key could reach the mock; observations must never show it whole.
    masked = dict(headers)
    for name in _SECRET_HEADERS:
        if name in masked:
            scheme, _, key = masked[name].rpartition(" ")
            masked[name] = f"{scheme} {mask_key(key)}".strip()
    return masked


def _json_object(dialect: Dialect, raw: bytes) -> tuple[dict[str, Any] | None, BadRequest | None]:
    try:
        body = json.loads(raw)
    except ValueError as error:
        return None, dialect.invalid_json(str(error))
    if not isinstance(body, dict):
        return None, dialect.invalid_json("the body must be a JSON object")
    return body, None


def _model(body: dict[str, Any] | None) -> str | None:
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None
