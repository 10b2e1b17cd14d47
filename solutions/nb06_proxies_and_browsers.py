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

# %% exercise: resume_reply  check: lessons.toolkit.exercise_checks.nb06_proxies_and_browsers:check_resume_reply
import httpx

from lessons.relay_core import read_event
from lessons.toolkit.sse_parser import SSEDecoder


def read_reply(client: httpx.Client, url: str, last_event_id: str | None = None) -> str:
    """Read a generation's events at `url` to their end, as EventSource would, and return the
    reply's text: every token once, in order, however often the connection drops.

    Start after `last_event_id` if given. When a connection ends before the terminal event
    (`done` or `error`), reconnect at once with `Last-Event-ID`: the id of the last event you
    received *complete*. Stop at the terminal event, or when the server answers 204 (nothing
    more will come).
    """
    ### BEGIN SOLUTION
    text: list[str] = []
    while True:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 204:
                return "".join(text)
            response.raise_for_status()
            # The decoder dispatches only complete events, and updates its last_event_id only
            # then: an event cut in half by the drop is neither read nor counted as seen.
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    wire = read_event(event.event, event.data)
                    if wire.kind == "token":
                        text.append(wire.text)
                    if wire.terminal:
                        return "".join(text)
            last_event_id = decoder.last_event_id or last_event_id
    ### END SOLUTION


# %% end


# %% exercise: open_times  check: lessons.toolkit.exercise_checks.nb06_proxies_and_browsers:check_open_times
def open_times(durations_ms: list[float], limit: int) -> list[float]:
    """When each of these streams opens, in ms, if a page asks for all of them at time 0.

    Stream i lasts `durations_ms[i]` once open. The browser keeps at most `limit` open at once
    to one origin (6 over HTTP/1.1) and opens waiting streams in the order they were asked
    for, each as soon as an open one ends.
    """
    ### BEGIN SOLUTION
    import heapq

    ends: list[float] = []  # when each open stream ends: a min-heap of at most `limit` times
    opened: list[float] = []
    for duration in durations_ms:
        # A free connection now, or the moment the earliest open stream ends.
        start = heapq.heappop(ends) if len(ends) >= limit else 0.0
        opened.append(start)
        heapq.heappush(ends, start + duration)
    return opened
    ### END SOLUTION


# %% end
