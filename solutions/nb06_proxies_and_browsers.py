"""Solutions for notebook 06 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402
# %% exercise: streaming_location  check: lessons.toolkit.exercise_checks.nb06_proxies_and_browsers:check_streaming_location


def streaming_location() -> str:
    """The nginx `location` block for POST /chat/stream, proxying to the upstream named `relay`.

    It must stream whatever headers the app sends: buffering off, HTTP/1.1 with keep-alive to
    the upstream, and a read timeout no shorter than nginx's default 60 s.
    """
    ### BEGIN SOLUTION
    return """
location /chat/stream {
    proxy_pass http://relay;
    # Keep-alive connections to the app instead of a new one per request (HTTP/1.0).
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # Pass each chunk on as it arrives, even if the app forgets X-Accel-Buffering: no.
    proxy_buffering off;
    # Longer than the longest silence between keep-alive pings.
    proxy_read_timeout 300s;
}
"""
    ### END SOLUTION


# %% end

# %% exercise: stop_server_side  check: lessons.toolkit.exercise_checks.nb06_proxies_and_browsers:check_stop_server_side
import json
from collections.abc import AsyncIterator
from typing import Any


async def relay_tokens(stream: Any) -> AsyncIterator[str]:
    """Relay an AsyncOpenAI chat stream as `/chat/stream` events: a `{"token": ..., "done":
    false}` event per piece of text, then `{"token": "", "done": true}`. However the generator
    ends (finished, failed, or cancelled because the browser pressed Stop), close `stream`."""
    ### BEGIN SOLUTION
    try:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                token = chunk.choices[0].delta.content
                yield f"data: {json.dumps({'token': token, 'done': False})}\n\n"
        yield f"data: {json.dumps({'token': '', 'done': True})}\n\n"
    finally:
        # A client disconnect cancels this generator: the provider must stop generating too.
        await stream.close()
    ### END SOLUTION


# %% end
