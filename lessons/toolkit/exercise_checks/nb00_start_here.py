"""Checkers for notebook 00's exercises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from openai import AsyncOpenAI

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet

PROMPTS = ("Say hello.", "Explain streaming in one paragraph.")


async def check_stream_reply(stream_reply: Callable[..., Awaitable[list[str]]]) -> None:
    """Run the learner's function against a mock of its own and compare with the full reply."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders()
    with BackgroundServer(mock.app) as server:
        client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="mock-key", max_retries=0)
        async with client:
            for prompt in PROMPTS:
                # The mock is deterministic: the non-streamed reply is the text to expect.
                reply = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
                )
                expected = reply.choices[0].message.content or ""
                before = len(mock.requests)
                pieces = await stream_reply(client, prompt)
                if not isinstance(pieces, list) or not all(isinstance(p, str) for p in pieces):
                    raise NotYet(
                        f"return a list of strings; got {type(pieces).__name__} containing "
                        f"{sorted({type(p).__name__ for p in pieces or []})}"
                    )
                requests = mock.requests[before:]
                if not requests or not requests[-1].stream:
                    raise NotYet("the request was not streamed: pass stream=True")
                if "".join(pieces) != expected:
                    raise NotYet(
                        f"for {prompt!r} the pieces join to {''.join(pieces)!r}, "
                        f"expected {expected!r}"
                    )
                if len(pieces) < 2:
                    raise NotYet("the reply came back in one piece: collect each delta")
