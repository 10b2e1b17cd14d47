"""Every limit of a relay in one place, with defaults for a chat UI behind a proxy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelaySettings:
    """Deadlines, keep-alives and request bounds. Every lesson app takes one in create_app."""

    # Until the provider has answered (its response headers), SDK retries and back-off included.
    open_timeout_s: float = 15.0
    # From the provider's answer to the first piece of the reply: long prompts and reasoning
    # models are slow here.
    first_token_timeout_s: float = 30.0
    # The longest silence between two pieces once the reply flows.
    idle_timeout_s: float = 15.0
    # The longest a whole reply may take, however steadily it flows.
    total_timeout_s: float = 300.0
    # A `: ping` comment after this much silence on the client's side, well under the idle
    # cut-off of proxies and load balancers (often 30-60 s).
    keepalive_interval_s: float = 5.0
    # How long one write may wait for a client that stopped reading before the stream is ended.
    send_timeout_s: float = 10.0
    # Closing the provider's stream normally takes a millisecond; never wait longer than this.
    close_timeout_s: float = 2.0
    # How long shutdown waits for streams to send their terminal event.
    drain_timeout_s: float = 5.0
    # The largest request body read at all (413 beyond it, before it is read to the end).
    max_body_bytes: int = 64 * 1024
    # Output tokens per reply when the client does not ask, and the most it may ask for.
    default_max_tokens: int = 500
    max_tokens_cap: int = 1_000
    # Whether the server lets a client choose the system prompt. Off for deployed apps: the
    # system prompt is the server's policy, not the caller's.
    client_system_prompt: bool = True
    system_prompt: str = "You are a helpful assistant."
    # The SDKs' HTTP transport: "httpx" (their default, httpx2) or "aiohttp" (the SDKs' own
    # aiohttp-backed client, from their `aiohttp` extra). Notebook 09 measures both.
    http_client: str = "httpx"

    def __post_init__(self) -> None:
        for name in (
            "open_timeout_s",
            "first_token_timeout_s",
            "idle_timeout_s",
            "total_timeout_s",
            "keepalive_interval_s",
            "send_timeout_s",
            "close_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 1 <= self.default_max_tokens <= self.max_tokens_cap:
            raise ValueError("default_max_tokens must be between 1 and max_tokens_cap")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if self.http_client not in ("httpx", "aiohttp"):
            raise ValueError('http_client is "httpx" or "aiohttp"')
