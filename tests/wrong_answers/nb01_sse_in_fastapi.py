"""Wrong answers for notebook 01's exercises: each must get "not yet" from its checker."""

_SHAPE_HEAD = """
import json
from lessons.relay_core import EventShape, RelayError, StreamSummary

class PlainTextEvents(EventShape):
    def done(self, summary: StreamSummary) -> bytes:
        return b"event: done\\ndata:\\n\\n"

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        return b"event: error\\ndata: " + error.message.encode() + b"\\n\\n"

    def token(self, text: str) -> bytes:
"""

# JSON, as the lesson's own shapes do: the client gets a string to parse, not the text.
JSON_DATA = (
    _SHAPE_HEAD
    + """
        return b"data: " + json.dumps(text).encode() + b"\\n\\n"
"""
)

# One data line: a blank line in the text ends the event early.
ONE_LINE = (
    _SHAPE_HEAD
    + """
        return f"data: {text}\\n\\n".encode()
"""
)

# Splits on LF only: the text after a lone CR is read as a field of its own.
LF_ONLY = (
    _SHAPE_HEAD
    + """
        return "".join(f"data: {line}\\n" for line in text.split("\\n")).encode() + b"\\n"
"""
)

# No space after the colon: a client strips one space, so " How" arrives as "How".
NO_SPACE = (
    _SHAPE_HEAD
    + """
        lines = text.replace("\\r\\n", "\\n").replace("\\r", "\\n").split("\\n")
        return "".join(f"data:{line}\\n" for line in lines).encode() + b"\\n"
"""
)

# No blank line at the end: every piece of the reply runs into the next one.
NO_BLANK_LINE = (
    _SHAPE_HEAD
    + """
        lines = text.replace("\\r\\n", "\\n").replace("\\r", "\\n").split("\\n")
        return "".join(f"data: {line}\\n" for line in lines).encode()
"""
)

# str, not bytes.
RETURNS_STR = (
    _SHAPE_HEAD
    + """
        lines = text.replace("\\r\\n", "\\n").replace("\\r", "\\n").split("\\n")
        return "".join(f"data: {line}\\n" for line in lines) + "\\n"
"""
)

_REPLY_HEAD = """
import json
from typing import NamedTuple
from lessons.toolkit.sse_parser import parse_sse

class Reply(NamedTuple):
    text: str
    last_event_id: str | None
    ending: str

"""

# Splits on blank lines by hand: a half-received event counts, CR LF streams break.
SPLITS_BY_HAND = (
    _REPLY_HEAD
    + """
def read_reply(raw: str) -> Reply:
    text, last_id, ending = "", None, "cut"
    for block in raw.split("\\n\\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\\n") if ": " in line)
        if "id" in fields:
            last_id = fields["id"]
        if fields.get("event") == "token":
            text += json.loads(fields["data"])["text"]
        elif fields.get("event") == "done":
            ending = "done"
        elif fields.get("event") == "error":
            ending = "error:" + json.loads(fields["data"])["code"]
    return Reply(text, last_id, ending)
"""
)

# Takes each event's own id: an error event without one resets the id to None.
OWN_ID_ONLY = (
    _REPLY_HEAD
    + """
def read_reply(raw: str) -> Reply:
    text, last_id, ending = "", None, "cut"
    for event in parse_sse(raw):
        last_id = event.id
        data = json.loads(event.data)
        if event.event == "token":
            text += data["text"]
        elif event.event == "done":
            ending = "done"
        elif event.event == "error":
            ending = "error:" + data["code"]
    return Reply(text, last_id, ending)
"""
)

# Counts the events instead of reading their ids.
COUNTS_EVENTS = (
    _REPLY_HEAD
    + """
def read_reply(raw: str) -> Reply:
    events = parse_sse(raw)
    text = "".join(json.loads(e.data)["text"] for e in events if e.event == "token")
    ending = "cut"
    if events and events[-1].event in ("done", "error"):
        data = json.loads(events[-1].data)
        ending = "done" if events[-1].event == "done" else "error:" + data["code"]
    return Reply(text, str(len(events) - 1) if events else None, ending)
"""
)

# Trusts that a stream ends well: no terminal event is read as done.
ASSUMES_DONE = (
    _REPLY_HEAD
    + """
def read_reply(raw: str) -> Reply:
    text, ending = "", "done"
    last_id = None
    for event in parse_sse(raw):
        last_id = event.last_event_id or None
        data = json.loads(event.data)
        if event.event == "token":
            text += data["text"]
        elif event.event == "error":
            ending = "error:" + data["code"]
    return Reply(text, last_id, ending)
"""
)

_WORDS_HEAD = """
from collections.abc import AsyncIterable
from typing import Annotated
from fastapi import Depends, Header, HTTPException
from fastapi.sse import ServerSentEvent
from pydantic import BaseModel, Field

class Words(BaseModel):
    words: list[str] = Field(min_length=1, max_length=50)

"""

_CHECKED_SEEN = """
def events_seen(body: Words, last_event_id: Annotated[str | None, Header()] = None) -> int:
    if last_event_id is None:
        return 0
    if not last_event_id.isdigit() or not 1 <= int(last_event_id) <= len(body.words) + 1:
        raise HTTPException(status_code=400, detail="not an id of this stream")
    return int(last_event_id)

"""

# Ids from 0, as enumerate gives them: a client holding id n has then seen n + 1 events.
IDS_FROM_ZERO = (
    _WORDS_HEAD
    + """
def events_seen(body: Words, last_event_id: Annotated[str | None, Header()] = None) -> int:
    if last_event_id is None:
        return 0
    if not last_event_id.isdigit() or int(last_event_id) > len(body.words):
        raise HTTPException(status_code=400, detail="not an id of this stream")
    return int(last_event_id) + 1

async def word_events(body: Words, seen: Annotated[int, Depends(events_seen)]
                      ) -> AsyncIterable[ServerSentEvent]:
    for number, word in enumerate(body.words):
        if number >= seen:
            yield ServerSentEvent(event="word", id=str(number), data={"word": word})
    yield ServerSentEvent(event="done", id=str(len(body.words)), data={"count": len(body.words)})
"""
)

# Resends the event the client already has.
OFF_BY_ONE = (
    _WORDS_HEAD
    + _CHECKED_SEEN
    + """
async def word_events(body: Words, seen: Annotated[int, Depends(events_seen)]
                      ) -> AsyncIterable[ServerSentEvent]:
    for number, word in enumerate(body.words, start=1):
        if number >= seen:
            yield ServerSentEvent(event="word", id=str(number), data={"word": word})
    done_id = len(body.words) + 1
    yield ServerSentEvent(event="done", id=str(done_id), data={"count": len(body.words)})
"""
)

# Checks the id inside the generator: by then the 200 has been sent.
REFUSES_IN_THE_GENERATOR = (
    _WORDS_HEAD
    + """
def events_seen(body: Words, last_event_id: Annotated[str | None, Header()] = None) -> int:
    if last_event_id is None:
        return 0
    return int(last_event_id) if last_event_id.isdigit() and last_event_id != "0" else -1

async def word_events(body: Words, seen: Annotated[int, Depends(events_seen)]
                      ) -> AsyncIterable[ServerSentEvent]:
    if not 0 <= seen <= len(body.words) + 1:
        raise HTTPException(status_code=400, detail="not an id of this stream")
    for number, word in enumerate(body.words, start=1):
        if number > seen:
            yield ServerSentEvent(event="word", id=str(number), data={"word": word})
    done_id = len(body.words) + 1
    if done_id > seen:
        yield ServerSentEvent(event="done", id=str(done_id), data={"count": len(body.words)})
"""
)

# Accepts any id: a client of another stream (or a typo) is answered as if it were ours.
NO_CHECK = (
    _WORDS_HEAD
    + """
def events_seen(body: Words, last_event_id: Annotated[str | None, Header()] = None) -> int:
    return int(last_event_id) if last_event_id and last_event_id.isdigit() else 0

async def word_events(body: Words, seen: Annotated[int, Depends(events_seen)]
                      ) -> AsyncIterable[ServerSentEvent]:
    for number, word in enumerate(body.words, start=1):
        if number > seen:
            yield ServerSentEvent(event="word", id=str(number), data={"word": word})
    done_id = len(body.words) + 1
    if done_id > seen:
        yield ServerSentEvent(event="done", id=str(done_id), data={"count": len(body.words)})
"""
)

# Yields preformatted text: FastAPI JSON-encodes it into one `data:` line of a `message` event.
PREFORMATTED_TEXT = (
    _WORDS_HEAD
    + _CHECKED_SEEN
    + """
import json

async def word_events(body: Words, seen: Annotated[int, Depends(events_seen)]
                      ) -> AsyncIterable[str]:
    for number, word in enumerate(body.words, start=1):
        if number > seen:
            yield f"id: {number}\\nevent: word\\ndata: {json.dumps({'word': word})}\\n\\n"
    yield f"event: done\\ndata: {json.dumps({'count': len(body.words)})}\\n\\n"
"""
)

WRONG_ANSWERS = {
    "plain_text_events": [JSON_DATA, ONE_LINE, LF_ONLY, NO_SPACE, NO_BLANK_LINE, RETURNS_STR],
    "read_reply": [SPLITS_BY_HAND, OWN_ID_ONLY, COUNTS_EVENTS, ASSUMES_DONE],
    "resume_words": [
        IDS_FROM_ZERO,
        OFF_BY_ONE,
        REFUSES_IN_THE_GENERATOR,
        NO_CHECK,
        PREFORMATTED_TEXT,
    ],
}
