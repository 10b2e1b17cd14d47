"""Wrong answers for notebook 06's exercises: each must be reported as "not yet"."""

_LOCATION = '''
def streaming_location() -> str:
    return """
location /chat/stream {
%s
}
"""
'''

_GOOD_LINES = [
    "    proxy_pass http://relay;",
    "    proxy_http_version 1.1;",
    '    proxy_set_header Connection "";',
    "    proxy_buffering off;",
]


def _location(*lines: str) -> str:
    return _LOCATION % "\n".join(lines)


# Buffering left on: the pitfall the lesson is about.
BUFFERED = _location(*[line for line in _GOOD_LINES if "buffering" not in line])
# HTTP/1.0 to the upstream (nginx's default).
HTTP_1_0 = _location(
    *[line for line in _GOOD_LINES if "1.1" not in line and "Connection" not in line]
)
# HTTP/1.1 but nginx still sends Connection: close.
NO_CONNECTION_RESET = _location(*[line for line in _GOOD_LINES if "Connection" not in line])
# A read timeout that cuts a model that thinks for 30 s.
SHORT_TIMEOUT = _location(*_GOOD_LINES, "    proxy_read_timeout 10s;")
# A URI after the upstream rewrites /chat/stream to /.
PATH_REWRITE = _location(*_GOOD_LINES).replace("http://relay;", "http://relay/;")
# Not valid nginx: a missing semicolon.
MISSING_SEMICOLON = _location(*_GOOD_LINES[:-1], "    proxy_buffering off")

_READER_HEAD = """
import httpx

from lessons.relay_core import read_event
from lessons.toolkit.sse_parser import SSEDecoder


def read_reply(client: httpx.Client, url: str, last_event_id: str | None = None) -> str:
    text = []
"""

# Reads one connection and calls it the reply: a drop is taken for the end.
NO_RECONNECT = (
    _READER_HEAD
    + """
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 204:
            return ""
        decoder = SSEDecoder()
        for chunk in response.iter_bytes():
            for event in decoder.feed(chunk):
                wire = read_event(event.event, event.data)
                if wire.kind == "token":
                    text.append(wire.text)
    return "".join(text)
"""
)

# Reconnects, but without Last-Event-ID: the server starts from the first event every time.
NO_LAST_EVENT_ID = (
    _READER_HEAD
    + """
    while True:
        with client.stream("GET", url) as response:
            if response.status_code == 204:
                return "".join(text)
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    wire = read_event(event.event, event.data)
                    if wire.kind == "token":
                        text.append(wire.text)
                    if wire.terminal:
                        return "".join(text)
"""
)

# Parses lines itself and takes an `id:` line as seen before its event is complete.
ID_LINE_IS_NOT_AN_EVENT = (
    _READER_HEAD
    + """
    import json

    while True:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 204:
                return "".join(text)
            name = None
            for line in response.iter_lines():
                if line.startswith("id:"):
                    last_event_id = line[3:].strip()
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    if name == "token":
                        text.append(json.loads(line[5:])["text"])
                    if name in ("done", "error"):
                        return "".join(text)
                elif line == "":
                    name = None
"""
)

# Ignores where the caller asked to start: resumes from the beginning.
IGNORES_THE_START = (
    _READER_HEAD
    + """
    position = None
    while True:
        headers = {"Last-Event-ID": position} if position else {}
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 204:
                return "".join(text)
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    wire = read_event(event.event, event.data)
                    if wire.kind == "token":
                        text.append(wire.text)
                    if wire.terminal:
                        return "".join(text)
            position = decoder.last_event_id or position
"""
)

# Never looks at the status: a 204 has no events, so it reconnects for ever.
IGNORES_204 = (
    _READER_HEAD
    + """
    while True:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with client.stream("GET", url, headers=headers) as response:
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    wire = read_event(event.event, event.data)
                    if wire.kind == "token":
                        text.append(wire.text)
                    if wire.terminal:
                        return "".join(text)
            last_event_id = decoder.last_event_id or last_event_id
"""
)

# Only `done` ends it: after an `error` event it reconnects (and gets a 204).
ONLY_DONE_ENDS = (
    _READER_HEAD
    + """
    while True:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 204:
                return "".join(text)
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    wire = read_event(event.event, event.data)
                    if wire.kind == "token":
                        text.append(wire.text)
                    if wire.kind == "done":
                        return "".join(text)
            last_event_id = decoder.last_event_id or last_event_id
"""
)

_OPEN_HEAD = """
def open_times(durations_ms: list[float], limit: int) -> list[float]:
"""

# Each stream waits for the one `limit` places before it: right only when all last as long.
SLOT_BY_POSITION = (
    _OPEN_HEAD
    + """
    opened = []
    for i in range(len(durations_ms)):
        if i < limit:
            opened.append(0.0)
        else:
            opened.append(opened[i - limit] + durations_ms[i - limit])
    return opened
"""
)

# Assumes every stream lasts as long as the first.
EQUAL_DURATIONS = (
    _OPEN_HEAD
    + """
    if not durations_ms:
        return []
    return [float((i // limit) * durations_ms[0]) for i in range(len(durations_ms))]
"""
)

# Forgets the limit: every stream opens at once (true of HTTP/2 only).
NO_LIMIT = _OPEN_HEAD + "    return [0.0 for _ in durations_ms]\n"

# Lets one stream too many through before queueing.
OFF_BY_ONE = (
    _OPEN_HEAD
    + """
    import heapq

    ends, opened = [], []
    for duration in durations_ms:
        start = heapq.heappop(ends) if len(ends) > limit else 0.0
        opened.append(start)
        heapq.heappush(ends, start + duration)
    return opened
"""
)

WRONG_ANSWERS = {
    "streaming_location": [
        BUFFERED,
        HTTP_1_0,
        NO_CONNECTION_RESET,
        SHORT_TIMEOUT,
        PATH_REWRITE,
        MISSING_SEMICOLON,
    ],
    "resume_reply": [
        NO_RECONNECT,
        NO_LAST_EVENT_ID,
        ID_LINE_IS_NOT_AN_EVENT,
        IGNORES_THE_START,
        IGNORES_204,
        ONLY_DONE_ENDS,
    ],
    "open_times": [SLOT_BY_POSITION, EQUAL_DURATIONS, NO_LIMIT, OFF_BY_ONE],
}
