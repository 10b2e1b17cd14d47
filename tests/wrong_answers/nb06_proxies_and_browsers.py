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

_RELAY_HEAD = """
import json
from collections.abc import AsyncIterator
from typing import Any


async def relay_tokens(stream: Any) -> AsyncIterator[str]:
"""

# Closes only after a complete reply: Stop leaves the provider generating.
CLOSE_AFTER_LOOP = (
    _RELAY_HEAD
    + """
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            token = chunk.choices[0].delta.content
            yield f"data: {json.dumps({'token': token, 'done': False})}\\n\\n"
    yield f"data: {json.dumps({'token': '', 'done': True})}\\n\\n"
    await stream.close()
"""
)

# `except Exception` misses CancelledError, which is what a disconnect raises.
EXCEPT_EXCEPTION = (
    _RELAY_HEAD
    + """
    try:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                token = chunk.choices[0].delta.content
                yield f"data: {json.dumps({'token': token, 'done': False})}\\n\\n"
        yield f"data: {json.dumps({'token': '', 'done': True})}\\n\\n"
        await stream.close()
    except Exception:
        await stream.close()
        raise
"""
)

# Closes in finally but never sends the terminal event.
NO_DONE_EVENT = (
    _RELAY_HEAD
    + """
    try:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                token = chunk.choices[0].delta.content
                yield f"data: {json.dumps({'token': token, 'done': False})}\\n\\n"
    finally:
        await stream.close()
"""
)

# Collects everything first: closes correctly, but nothing streams until the end.
COLLECTS_FIRST = (
    _RELAY_HEAD
    + """
    try:
        tokens = [c.choices[0].delta.content async for c in stream
                  if c.choices and c.choices[0].delta.content]
        for token in tokens:
            yield f"data: {json.dumps({'token': token, 'done': False})}\\n\\n"
        yield f"data: {json.dumps({'token': '', 'done': True})}\\n\\n"
    finally:
        await stream.close()
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
    "stop_server_side": [CLOSE_AFTER_LOOP, EXCEPT_EXCEPTION, NO_DONE_EVENT, COLLECTS_FIRST],
}
