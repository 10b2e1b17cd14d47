"""What the mock saw and did for one request, for tests and notebooks to inspect."""

from dataclasses import dataclass, field
from typing import Any, Literal

from lessons.mock_providers.faults import Fault

Outcome = Literal["in_progress", "completed", "client_disconnected", "fault", "rejected"]


@dataclass
class ObservedRequest:
    """One request to the mock. Times are `time.monotonic()` seconds, or None."""

    id: int
    endpoint: str
    provider: str
    model: str | None
    # As the request sent them: Chat `messages`, Responses `input`, Anthropic `messages`.
    messages: Any
    stream: bool
    tokens_planned: int = 0
    tokens_sent: int = 0
    started_at: float = 0.0
    first_token_at: float | None = None
    finished_at: float | None = None
    # "rejected": the mock answered 400 for a malformed request.
    outcome: Outcome = "in_progress"
    disconnected_at: float | None = None
    # Anthropic `system` or Responses `instructions`, as sent; for Chat, the system messages' text.
    system: Any = None
    # The id the mock sent in `x-request-id` (OpenAI) or `request-id` (Anthropic).
    request_id: str = ""
    status: int = 200
    fault: Fault | None = None
    # The reply text the mock planned to send, before any fault cut it short.
    reply_text: str = ""
    input_tokens: int = 0
    # Request headers, names lower-cased, API keys masked.
    headers: dict[str, str] = field(default_factory=dict)
    # The parsed JSON body, or None when it was not valid JSON.
    body: Any = None

    @property
    def finished(self) -> bool:
        """True once the mock has stopped answering (whatever the outcome)."""
        return self.finished_at is not None

    @property
    def ttft(self) -> float | None:
        """Seconds from the request's arrival to its first token leaving the mock."""
        if self.first_token_at is None:
            return None
        return self.first_token_at - self.started_at
