"""Tests for lessons.toolkit.sse_parser: spec edge cases, round trips, and httpx-sse parity."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator

import httpx
import httpx_sse
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons.toolkit.sse_parser import (
    IncompleteEventError,
    SSEComment,
    SSEDecoder,
    SSEEvent,
    SSEItem,
    aiter_sse,
    format_sse,
    iter_sse,
    parse_sse,
)

# Deterministic and quick: the same examples on every run, no example database on disk.
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def feed_all(chunks: Iterable[bytes | str], include_comments: bool = False) -> list[SSEItem]:
    decoder = SSEDecoder(include_comments)
    out: list[SSEItem] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def byte_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- line endings and chunk boundaries ------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_each_line_ending(eol: str) -> None:
    text = eol.join(["event: a", "data: 1", "data: 2", "", "data: 3", "", ""])
    assert parse_sse(text) == [
        SSEEvent(event="a", data="1\n2"),
        SSEEvent(data="3"),
    ]


def test_mixed_line_endings_in_one_stream() -> None:
    assert parse_sse("data: a\r\ndata: b\rdata: c\n\r\n") == [SSEEvent(data="a\nb\nc")]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The LF completing that CRLF must not be read as a blank line (which would dispatch).
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r\n\r") == [SSEEvent(data="a\nb")]
    assert decoder.feed(b"\n") == []
    assert decoder.close() == []
    assert decoder.incomplete_tail is None


def test_crlf_split_by_an_empty_chunk() -> None:
    assert feed_all([b"data: a\r", b"", b"\n", b"\r", b"", b"\n"]) == [SSEEvent(data="a")]


def test_event_ending_in_cr_is_dispatched_without_waiting_for_next_chunk() -> None:
    # A trailing CR already ends the line; holding the event back would add latency.
    decoder = SSEDecoder()
    assert decoder.feed("data: a\r\r") == [SSEEvent(data="a")]


def test_two_crs_are_two_line_endings() -> None:
    assert feed_all([b"data: a\r", b"\r"]) == [SSEEvent(data="a")]


def test_multibyte_utf8_split_at_every_byte() -> None:
    wire = "data: é€😀\n\n".encode()
    for cut in range(len(wire) + 1):
        assert feed_all([wire[:cut], wire[cut:]]) == [SSEEvent(data="é€😀")], cut
    assert feed_all(byte_chunks(wire, 1)) == [SSEEvent(data="é€😀")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse_sse(b"data: a\xffb\n\n") == [SSEEvent(data="a\ufffdb")]


def test_stream_cut_inside_a_multibyte_sequence_is_reported() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: ok\n\ndata: \xe2\x82")
    assert decoder.close() == []
    assert decoder.incomplete_tail == "data: \ufffd"


def test_str_and_bytes_chunks_mix() -> None:
    assert feed_all([b"data: \xe2", "\u20ac\n", b"\n"]) == [SSEEvent(data="\ufffd\u20ac")]
    assert feed_all(["data: ", b"\xe2\x82\xac", "\n\n"]) == [SSEEvent(data="€")]


def test_unicode_line_separators_are_not_line_endings() -> None:
    # str.splitlines() would break these apart; the spec knows only CR and LF.
    data = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"
    assert parse_sse(f"data: {data}\n\n") == [SSEEvent(data=data)]


# --- byte order mark -------------------------------------------------------------------------


def test_leading_bom_ignored() -> None:
    assert parse_sse(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent(data="x")]
    assert parse_sse("\ufeffdata: x\n\n") == [SSEEvent(data="x")]


def test_leading_bom_split_across_chunks_ignored() -> None:
    assert feed_all([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent(data="x")]


def test_only_one_bom_is_ignored() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert parse_sse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_after_the_start_is_data() -> None:
    assert parse_sse("data: a\n\ndata: \ufeffb\n\n")[1] == SSEEvent(data="\ufeffb")


# --- fields ----------------------------------------------------------------------------------


def test_comments_hidden_by_default() -> None:
    assert parse_sse(": ping\n\ndata: a\n: mid-event\n\n") == [SSEEvent(data="a")]


def test_comments_exposed_in_order_when_asked() -> None:
    items = parse_sse(": ping\n\n:\n:no space\n:  two\ndata: a\n\n: tail\n", include_comments=True)
    assert items == [
        SSEComment("ping"),
        SSEComment(""),
        SSEComment("no space"),
        SSEComment(" two"),
        SSEEvent(data="a"),
        SSEComment("tail"),
    ]


def test_comment_does_not_dispatch_or_change_event() -> None:
    assert parse_sse("event: e\n: ping\ndata: a\n: ping\n\n") == [SSEEvent(event="e", data="a")]


def test_field_without_colon_has_empty_value() -> None:
    assert parse_sse("data\n\n") == [SSEEvent(data="")]
    assert parse_sse("data\ndata\n\n") == [SSEEvent(data="\n")]
    assert parse_sse("event\ndata: x\n\n") == [SSEEvent(event="message", data="x")]


def test_no_space_after_colon() -> None:
    assert parse_sse("event:e\ndata:x\nid:7\n\n") == [
        SSEEvent(event="e", data="x", id="7", last_event_id="7")
    ]


def test_two_spaces_after_colon_keep_one() -> None:
    assert parse_sse("data:  x\n\n") == [SSEEvent(data=" x")]


def test_only_first_colon_separates() -> None:
    assert parse_sse('data: {"a": 1}\n\n')[0].json() == {"a": 1}


def test_multiline_data_joined_with_lf() -> None:
    assert parse_sse("data: a\ndata:\ndata: b\n\n") == [SSEEvent(data="a\n\nb")]


def test_empty_event_name_means_message() -> None:
    assert parse_sse("event:\ndata: x\n\n") == [SSEEvent(event="message", data="x")]


def test_empty_data_not_dispatched_and_event_type_reset() -> None:
    assert parse_sse("event: e\n\n") == []
    assert parse_sse("event: e\n\ndata: x\n\n") == [SSEEvent(event="message", data="x")]
    assert parse_sse("\n\n\n") == []


def test_empty_data_block_still_sets_last_event_id_and_retry() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("id: 5\nretry: 3000\n\n") == []
    assert (decoder.last_event_id, decoder.reconnection_time) == ("5", 3000)
    assert decoder.feed("data: x\n\n") == [SSEEvent(data="x", last_event_id="5")]


def test_trailing_event_without_blank_line_discarded_and_reported() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: a\n\nevent: e\ndata: b\n") == [SSEEvent(data="a")]
    assert decoder.close() == []
    assert decoder.incomplete_tail == "event: e\ndata: b\n"


def test_trailing_unterminated_line_reported() -> None:
    decoder = SSEDecoder()
    decoder.feed("data: a\n\ndata: b")
    decoder.close()
    assert decoder.incomplete_tail == "data: b"


def test_clean_end_has_no_incomplete_tail() -> None:
    for text in ["", "data: a\n\n", "data: a\n\n: ping\n", "data: a\r\n\r\n"]:
        decoder = SSEDecoder()
        decoder.feed(text)
        decoder.close()
        assert decoder.incomplete_tail is None, text


def test_strict_eof_raises_with_the_tail() -> None:
    decoder = SSEDecoder(strict_eof=True)
    decoder.feed("data: a\n\ndata: b\n: ping\n")
    with pytest.raises(IncompleteEventError) as excinfo:
        decoder.close()
    assert excinfo.value.tail == "data: b\n: ping\n"


def test_feed_after_close_is_an_error() -> None:
    decoder = SSEDecoder()
    decoder.close()
    assert decoder.close() == []
    with pytest.raises(RuntimeError):
        decoder.feed("data: x\n\n")


def test_id_with_nul_ignored() -> None:
    assert parse_sse("id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        SSEEvent(data="a", id="1", last_event_id="1"),
        SSEEvent(data="b", id=None, last_event_id="1"),
    ]


def test_retry_accepts_ascii_digits_only() -> None:
    assert parse_sse("retry: 0042\ndata: a\n\n") == [SSEEvent(data="a", retry=42)]
    for bad in ["10a", "-5", "+5", " 5", "1_0", "1.5", "\uff15", "\u0665", ""]:
        decoder = SSEDecoder()
        assert decoder.feed(f"retry: {bad}\ndata: a\n\n") == [SSEEvent(data="a")], bad
        assert decoder.reconnection_time is None, bad


def test_retry_is_per_event_but_reconnection_time_persists() -> None:
    decoder = SSEDecoder()
    events = decoder.feed("retry: 10\ndata: a\n\ndata: b\n\n")
    assert [e.retry for e in events] == [10, None]
    assert decoder.reconnection_time == 10


def test_last_event_id_persists_across_events() -> None:
    assert parse_sse("id: 1\ndata: a\n\ndata: b\n\nid:\ndata: c\n\nid: 2\nid: 3\ndata: d\n\n") == [
        SSEEvent(data="a", id="1", last_event_id="1"),
        SSEEvent(data="b", id=None, last_event_id="1"),
        # An empty id resets the last event id.
        SSEEvent(data="c", id="", last_event_id=""),
        SSEEvent(data="d", id="3", last_event_id="3"),
    ]


def test_unknown_fields_ignored() -> None:
    # Field names are case-sensitive: "Data" and "ID" are unknown too.
    text = "foo: bar\nData: x\nID: 9\nretry_ms: 5\ndata: y\n\n"
    assert parse_sse(text) == [SSEEvent(data="y")]


def test_json_helper() -> None:
    assert SSEEvent(data='{"token": "hi", "done": false}').json() == {"token": "hi", "done": False}


# --- format_sse ------------------------------------------------------------------------------


def test_format_sse_writes_one_data_line_per_line() -> None:
    event = SSEEvent(event="token", data="a\n\nb", id="4", retry=100)
    assert format_sse(event) == "event: token\nid: 4\nretry: 100\ndata: a\ndata:\ndata: b\n\n"
    assert format_sse(SSEEvent()) == "data:\n\n"


def test_format_sse_comments() -> None:
    assert format_sse(SSEComment("ping")) == ": ping\n"
    assert format_sse(SSEComment("")) == ":\n"
    # A line break must not let a comment smuggle in a field line.
    assert format_sse(SSEComment("a\ndata: x")) == ": a\n: data: x\n"


def test_format_sse_cr_in_data_comes_back_as_lf() -> None:
    assert parse_sse(format_sse(SSEEvent(data="a\rb\r\nc"))) == [SSEEvent(data="a\nb\nc")]


@pytest.mark.parametrize(
    "bad",
    [
        SSEEvent(event="a\nb"),
        SSEEvent(event="a\rb"),
        SSEEvent(id="1\n2"),
        SSEEvent(id="1\x002"),
        SSEEvent(retry=-1),
    ],
    ids=["event-lf", "event-cr", "id-lf", "id-nul", "retry-negative"],
)
def test_format_sse_rejects_what_the_wire_cannot_carry(bad: SSEEvent) -> None:
    with pytest.raises(ValueError):
        format_sse(bad)


# --- httpx integration -----------------------------------------------------------------------


def sse_response(
    chunks: Iterable[bytes], content_type: str = "text/event-stream"
) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": content_type}, content=iter(chunks))


def async_sse_response(chunks: list[bytes]) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


def test_iter_sse_over_awkward_chunks() -> None:
    wire = ": ping\r\n\r\nevent: token\r\ndata: é\r\n\r\n".encode()
    items = list(iter_sse(sse_response(byte_chunks(wire, 1)), include_comments=True))
    assert items == [SSEComment("ping"), SSEEvent(event="token", data="é")]


def test_iter_sse_decompresses() -> None:
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream", "content-encoding": "gzip"},
        content=gzip.compress(b"data: zipped\n\n"),
    )
    assert list(iter_sse(response)) == [SSEEvent(data="zipped")]


def test_iter_sse_strict_eof_raises_after_complete_events() -> None:
    seen: list[SSEItem] = []
    with pytest.raises(IncompleteEventError):
        for item in iter_sse(sse_response([b"data: a\n\ndata: b"]), strict_eof=True):
            seen.append(item)
    assert seen == [SSEEvent(data="a")]


def test_aiter_sse() -> None:
    async def collect() -> list[SSEItem]:
        response = async_sse_response([b"data: a\r", b"\n\r", b"\n: ping\n", b"data: b\n\n"])
        return [item async for item in aiter_sse(response, include_comments=True)]

    assert asyncio.run(collect()) == [SSEEvent(data="a"), SSEComment("ping"), SSEEvent(data="b")]


# --- property: format_sse then SSEDecoder is the identity ------------------------------------

_no_line_breaks = st.characters(codec="utf-8", exclude_characters="\r\n")
_event_names = st.text(_no_line_breaks, min_size=1, max_size=12)
# CR cannot round-trip: it is a line ending, and format_sse turns it into LF.
_data = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=40)
_ids = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=12)
_retries = st.none() | st.integers(min_value=0, max_value=10**9)
_events = st.builds(SSEEvent, event=_event_names, data=_data, id=_ids, retry=_retries)
_comments = st.builds(SSEComment, st.text(_no_line_breaks, max_size=12))
_items = st.lists(st.one_of(_events, _comments), max_size=8)


def expected_after_round_trip(items: list[SSEItem]) -> list[SSEItem]:
    last_id = ""
    out: list[SSEItem] = []
    for item in items:
        if isinstance(item, SSEEvent):
            last_id = item.id if item.id is not None else last_id
            item = dataclasses.replace(item, last_event_id=last_id)
        out.append(item)
    return out


def split_at(seq: bytes | str, cuts: list[int]) -> list[bytes | str]:
    bounds = [0, *sorted(cuts), len(seq)]
    return [seq[a:b] for a, b in itertools.pairwise(bounds)]


@PROPERTY
@given(items=_items, data=st.data())
def test_format_then_decode_round_trips(items: list[SSEItem], data: st.DataObject) -> None:
    wire = "".join(format_sse(item) for item in items)
    as_bytes = data.draw(st.booleans(), label="bytes")
    seq: bytes | str = wire.encode() if as_bytes else wire
    cuts = data.draw(st.lists(st.integers(0, len(seq)), max_size=12), label="cuts")
    decoder = SSEDecoder(include_comments=True)
    got: list[SSEItem] = []
    for chunk in split_at(seq, cuts):
        got += decoder.feed(chunk)
    got += decoder.close()
    assert got == expected_after_round_trip(items)
    assert decoder.incomplete_tail is None


# --- parity with httpx-sse -------------------------------------------------------------------


def httpx_sse_view(chunks: Iterable[bytes], content_type: str = "text/event-stream") -> list:
    source = httpx_sse.EventSource(sse_response(chunks, content_type))
    # httpx-sse's `id` is the stream's last event id, so it compares with our last_event_id.
    return [(e.event, e.data, e.id, e.retry) for e in source.iter_sse()]


def our_view(chunks: Iterable[bytes], content_type: str = "text/event-stream") -> list:
    items = iter_sse(sse_response(chunks, content_type))
    return [(e.event, e.data, e.last_event_id, e.retry) for e in items if isinstance(e, SSEEvent)]


AGREED_STREAMS = {
    "lf": b"event: a\ndata: 1\n\ndata: 2\n\n",
    "crlf": b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n",
    "cr": b"event: a\rdata: 1\r\rdata: 2\r\r",
    "mixed endings": b"data: a\r\ndata: b\rdata: c\n\r\n",
    "multi-line data": b"data: a\ndata:\ndata: b\n\n",
    "utf-8": "data: é€😀\n\n".encode(),
    "unicode separators": "data: a\u2028b\x0bc\x0cd\n\n".encode(),
    "comments": b": ping\n\ndata: a\n: mid\n\n",
    "field without colon": b"data\ndata\n\n",
    "spaces after colon": b"data:x\n\ndata:  y\n\n",
    "ids persist": b"id: 1\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n",
    "id with nul": b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
    "retry": b"retry: 0042\ndata: a\n\nretry: 1x\ndata: b\n\n",
    "empty event name": b"event:\ndata: x\n\n",
    "unknown fields": b"foo: bar\nData: x\ndata: y\n\n",
    # Both discard an event the stream ends without a blank line for (spec: "pending data
    # must be discarded"), terminated last line or not.
    "eof mid-event": b"data: a\n\nevent: e\ndata: b\n",
    "eof mid-line": b"data: a\n\ndata: b",
    "eof after lone cr": b"data: a\n\ndata: b\r",
}


@pytest.mark.parametrize("wire", AGREED_STREAMS.values(), ids=AGREED_STREAMS.keys())
@pytest.mark.parametrize("size", [None, 1, 3], ids=["whole", "1-byte", "3-byte"])
def test_agrees_with_httpx_sse(wire: bytes, size: int | None) -> None:
    chunks = [wire] if size is None else byte_chunks(wire, size)
    assert our_view(chunks) == httpx_sse_view(chunks)


_values = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\ufeff"), max_size=8)
_line = st.one_of(
    _values.map(lambda v: f"data: {v}"),
    _values.map(lambda v: f"data:{v}"),
    _values.map(lambda v: f"event: {v}"),
    _values.map(lambda v: f"id: {v}"),
    st.integers(0, 99999).map(lambda n: f"retry: {n}"),
    _values.map(lambda v: f": {v}"),
    st.sampled_from(["foo: bar", "Data: x", "data"]),
)
# Every block has a data line: otherwise httpx-sse dispatches where the spec does not (below).
_block = st.tuples(_values.map(lambda v: f"data: {v}"), st.lists(_line, max_size=4)).map(
    lambda t: [*t[1], t[0]]
)


@PROPERTY
@given(
    blocks=st.lists(_block, max_size=5),
    tail=st.lists(_line, max_size=2),
    data=st.data(),
)
def test_agrees_with_httpx_sse_on_random_streams(
    blocks: list[list[str]], tail: list[str], data: st.DataObject
) -> None:
    endings = st.sampled_from(["\n", "\r\n", "\r"])
    parts: list[str] = []
    for block in blocks:
        for line in [*block, ""]:
            parts.append(line + data.draw(endings))
    parts += [line + data.draw(endings) for line in tail]
    wire = "".join(parts).encode()
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8), label="cuts")
    chunks = [bytes(c) for c in split_at(wire, cuts)]
    assert our_view(chunks) == httpx_sse_view(chunks)


# Documented differences from httpx-sse 0.4.3 (what it does is asserted, so an upgrade that
# changes it shows up here).


def test_difference_httpx_sse_dispatches_blocks_without_data() -> None:
    # Spec: "If the data buffer is an empty string, set the data buffer and the event type buffer
    # to the empty string and return." httpx-sse dispatches whenever event, id or retry is set, or
    # any id was ever seen, so even a second blank line yields a phantom empty event.
    for wire, theirs in [
        (b"event: e\n\n", [("e", "", "", None)]),
        (b"retry: 5\n\n", [("message", "", "", 5)]),
        (b"id: 1\ndata: a\n\n\n", [("message", "a", "1", None), ("message", "", "1", None)]),
    ]:
        assert httpx_sse_view([wire]) == theirs
        assert our_view([wire]) == [e for e in theirs if e[1]]


def test_difference_httpx_sse_keeps_a_leading_bom() -> None:
    # Spec: one leading BOM is ignored. httpx-sse decodes with plain "utf-8", so the first line
    # reads as the unknown field "\ufeffdata" and the first event is lost.
    wire = b"\xef\xbb\xbfdata: x\n\n"
    assert httpx_sse_view([wire]) == []
    assert our_view([wire]) == [("message", "x", "", None)]


def test_difference_httpx_sse_retry_uses_int() -> None:
    # Spec: retry only if all ASCII digits. httpx-sse uses int(), which accepts more.
    for value, parsed in [("+5", 5), ("1_0", 10), ("\uff15", 5), (" 5", 5)]:
        wire = f"retry: {value}\ndata: a\n\n".encode()
        assert httpx_sse_view([wire]) == [("message", "a", "", parsed)], value
        assert our_view([wire]) == [("message", "a", "", None)], value


def test_difference_httpx_sse_honours_declared_charset() -> None:
    # Spec: the stream is always UTF-8. httpx-sse decodes with the Content-Type charset.
    wire = "data: é\n\n".encode()
    latin = "text/event-stream; charset=latin-1"
    assert httpx_sse_view([wire], latin) == [("message", "Ã©", "", None)]
    assert our_view([wire], latin) == [("message", "é", "", None)]


def test_difference_httpx_sse_checks_content_type() -> None:
    # httpx-sse refuses a response that is not text/event-stream; ours parses what came, since a
    # test kit asserts on headers separately and still wants to see the body.
    with pytest.raises(httpx_sse.SSEError):
        httpx_sse_view([b"data: a\n\n"], "text/plain")
    assert our_view([b"data: a\n\n"], "text/plain") == [("message", "a", "", None)]


def test_difference_httpx_sse_holds_back_a_line_ended_by_cr_at_chunk_end() -> None:
    # httpx-sse keeps a trailing CR until the next chunk (to see whether an LF follows), so an
    # event whose blank line ends in CR waits for the next chunk. Ours dispatches at once.
    def body(pulled: list[int]) -> Iterator[bytes]:
        yield b"data: a\r\r"
        pulled.append(2)
        yield b"data: b\r\r"

    pulled_ours: list[int] = []
    first = next(iter_sse(sse_response(body(pulled_ours))))
    assert first == SSEEvent(data="a") and pulled_ours == []

    pulled_theirs: list[int] = []
    theirs = httpx_sse.EventSource(sse_response(body(pulled_theirs))).iter_sse()
    assert next(theirs).data == "a" and pulled_theirs == [2]
