"""Solutions for notebook 01 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402
# %% exercise: plain_text_events  check: lessons.toolkit.exercise_checks.nb01_sse_in_fastapi:check_plain_text_events  candidate: PlainTextEvents
from lessons.relay_core import EventShape, RelayError, StreamSummary


class PlainTextEvents(EventShape):
    """Each piece of the reply as plain text, in as many `data:` lines as it has lines, so that
    a client's `event.data` is the piece itself, with nothing to parse; then `event: done`, or
    `event: error` whose data is the error's fixed message."""

    def token(self, text: str) -> bytes:
        ### BEGIN SOLUTION
        # A client ends a line at CR LF, LF or CR: split on all three, or the text after a lone
        # CR would be read as a field of its own. One space after the colon, because a client
        # strips exactly one: a piece that starts with a space (" How") keeps it.
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return "".join(f"data: {line}\n" for line in lines).encode() + b"\n"
        ### END SOLUTION

    def done(self, summary: StreamSummary) -> bytes:
        return b"event: done\ndata:\n\n"

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        return b"event: error\ndata: " + error.message.encode() + b"\n\n"


# %% end

# %% exercise: read_reply  check: lessons.toolkit.exercise_checks.nb01_sse_in_fastapi:check_read_reply  candidate: read_reply
import json
from typing import NamedTuple

from lessons.toolkit.sse_parser import parse_sse


class Reply(NamedTuple):
    text: str  # the text of the token events received
    last_event_id: str | None  # what a client that reconnects sends as Last-Event-ID
    ending: str  # "done", "error:<code>", or "cut" (no terminal event arrived)


def read_reply(raw: str) -> Reply:
    """What a client of /chat/events knows from the text it received, which may have been cut
    off anywhere: the reply's text so far, its last event id, and how the stream ended."""
    ### BEGIN SOLUTION
    text, ending = "", "cut"
    last_event_id: str | None = None
    # parse_sse dispatches an event only at its blank line: a half-received last event is not
    # an event at all, and its id must not count.
    for event in parse_sse(raw):
        # The spec's last event id persists: an event without an id line does not reset it.
        last_event_id = event.last_event_id or None
        payload = json.loads(event.data)
        if event.event == "token":
            text += payload["text"]
        elif event.event == "done":
            ending = "done"
        elif event.event == "error":
            ending = f"error:{payload['code']}"
    return Reply(text, last_event_id, ending)
    ### END SOLUTION


# %% end

# %% exercise: resume_words  check: lessons.toolkit.exercise_checks.nb01_sse_in_fastapi:check_resume_words  candidate: word_events
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from fastapi.sse import ServerSentEvent
from pydantic import BaseModel, Field


class Words(BaseModel):
    words: list[str] = Field(min_length=1, max_length=50)


def events_seen(body: Words, last_event_id: Annotated[str | None, Header()] = None) -> int:
    """How many events a reconnecting client has already seen (0 without Last-Event-ID).
    An id that is not one of this stream's is refused with 400, before the stream starts."""
    ### BEGIN SOLUTION
    if last_event_id is None:
        return 0
    # Ids are 1..n for the words and n + 1 for `done`: "0" and anything else is not ours.
    if not last_event_id.isdigit() or not 1 <= int(last_event_id) <= len(body.words) + 1:
        raise HTTPException(status_code=400, detail="Last-Event-ID is not an id of this stream")
    return int(last_event_id)
    ### END SOLUTION


async def word_events(
    body: Words, seen: Annotated[int, Depends(events_seen)]
) -> AsyncIterable[ServerSentEvent]:
    """For `response_class=EventSourceResponse`: a `word` event per word, data {"word": w}, with
    ids 1, 2, 3, ...; then `done` with data {"count": number of words} and the next id. A client
    that has seen `seen` events gets only the ones after them."""
    ### BEGIN SOLUTION
    for number, word in enumerate(body.words, start=1):
        if number > seen:
            yield ServerSentEvent(event="word", id=str(number), data={"word": word})
    done_id = len(body.words) + 1
    if done_id > seen:
        yield ServerSentEvent(event="done", id=str(done_id), data={"count": len(body.words)})
    ### END SOLUTION


# %% end
