"""Scripted faults and the rules that decide which requests get them."""

from dataclasses import dataclass, field
from typing import Literal

from lessons.mock_providers.wire import ErrorKind

FaultKind = Literal["http_error", "error_event", "drop", "end_early", "stall"]
ENDPOINTS = ("chat.completions", "responses", "messages")
PROVIDERS = ("openai", "anthropic")


@dataclass(frozen=True)
class Fault:
    """What goes wrong with a request. Build one with the class methods, not the constructor."""

    kind: FaultKind
    status: int | None = None
    retry_after: float | None = None
    should_retry: bool = False
    after_tokens: int = 0
    error: ErrorKind = "overloaded"
    seconds: float = 0.0
    before_headers: bool = False

    @classmethod
    def http_error(
        cls, status: int, retry_after: float | None = None, should_retry: bool = False
    ) -> "Fault":
        """Refuse the request with this HTTP status and the provider's own error body.

        The answer carries `x-should-retry: false` unless `should_retry` is true, so the SDKs
        do not retry it: a `times=1` rule is not used up by a retry and no test sleeps through
        backoff. With `should_retry=True` the header is left out and the SDK's own rule applies
        (retry 408, 409, 429 and 5xx, waiting `retry_after` seconds when given).
        """
        if not 400 <= status <= 599:
            raise ValueError(f"an HTTP error status is 400-599, not {status}")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after cannot be negative")
        return cls("http_error", status=status, retry_after=retry_after, should_retry=should_retry)

    @classmethod
    def error_event(cls, after_tokens: int, kind: ErrorKind = "overloaded") -> "Fault":
        """Stream `after_tokens` tokens, then the provider's mid-stream error event, then end.

        A non-streaming request gets the matching HTTP error instead (OpenAI 503 or 500,
        Anthropic 529 or 500).
        """
        if kind not in ("overloaded", "server_error"):
            raise ValueError(f"kind is 'overloaded' or 'server_error', not {kind!r}")
        return cls("error_event", after_tokens=_tokens(after_tokens), error=kind)

    @classmethod
    def drop(cls, after_tokens: int) -> "Fault":
        """Stream `after_tokens` tokens, then cut the connection without a terminator."""
        return cls("drop", after_tokens=_tokens(after_tokens))

    @classmethod
    def end_early(cls, after_tokens: int) -> "Fault":
        """Stream `after_tokens` tokens, then end the response cleanly, without the provider's
        end markers: no finish reason, no `[DONE]`, no `response.completed`, no `message_stop`.

        The HTTP body ends properly (the chunked terminator is sent), so an SDK reading the
        stream sees a normal end; only the missing markers tell a cut reply from a whole one.
        """
        return cls("end_early", after_tokens=_tokens(after_tokens))

    @classmethod
    def stall(cls, after_tokens: int, seconds: float, before_headers: bool = False) -> "Fault":
        """Stream `after_tokens` tokens, then send nothing for `seconds`, then carry on.

        With `before_headers=True` not even the response headers are sent during the stall,
        as when a provider takes too long to answer at all.
        """
        if seconds < 0:
            raise ValueError("seconds cannot be negative")
        return cls(
            "stall",
            after_tokens=_tokens(after_tokens),
            seconds=seconds,
            before_headers=before_headers,
        )

    def describe(self) -> str:
        if self.kind == "http_error":
            return f"http_error({self.status})"
        if self.kind == "error_event":
            return f"error_event({self.error}, after {self.after_tokens} tokens)"
        if self.kind == "stall":
            return f"stall({self.seconds}s, after {self.after_tokens} tokens)"
        if self.kind == "end_early":
            return f"end_early(after {self.after_tokens} tokens)"
        return f"drop(after {self.after_tokens} tokens)"


def _tokens(after_tokens: int) -> int:
    if after_tokens < 0:
        raise ValueError("after_tokens cannot be negative")
    return after_tokens


@dataclass(eq=False)
class Rule:
    """A scripted answer for the requests that match every criterion given (None: any)."""

    fault: Fault | None = None
    prompt_contains: str | None = None
    model: str | None = None
    endpoint: str | None = None
    provider: str | None = None
    # How many requests the rule answers; None: every matching request.
    times: int | None = 1
    ttft_ms: float | None = None
    token_interval_ms: float | None = None
    reply: str | tuple[str, ...] | None = None
    # Send the argument fragments of parallel tool calls interleaved (see MockProviders.script).
    interleave_tool_calls: bool = False
    # How many requests the rule has answered so far.
    used: int = field(default=0)

    def __post_init__(self) -> None:
        if self.endpoint is not None and self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint is one of {ENDPOINTS}, not {self.endpoint!r}")
        if self.provider is not None and self.provider not in PROVIDERS:
            raise ValueError(f"provider is one of {PROVIDERS}, not {self.provider!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("times is at least 1 (or None for every matching request)")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.used >= self.times

    def matches(self, endpoint: str, provider: str, model: str, text: str) -> bool:
        return (
            not self.exhausted
            and (self.endpoint is None or self.endpoint == endpoint)
            and (self.provider is None or self.provider == provider)
            and (self.model is None or self.model == model)
            and (self.prompt_contains is None or self.prompt_contains in text)
        )
