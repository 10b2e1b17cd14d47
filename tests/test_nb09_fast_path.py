"""Notebook 09's fast path: the core's guarantees (the fault matrix runs over it too), the same
events as the SDK relay, and one write for what piled up while the client was slow."""

from __future__ import annotations

from lessons.relay_costs.app import create_app as fast_app
from lessons.sse_basics.app import create_app as sdk_app
from lessons.toolkit.slow_reader import count_writes
from lessons.toolkit.testkit import (
    assert_one_terminal_event,
    assert_streaming_headers,
    collect_sync,
)

LONG = " ".join(["Tokens stream out of the mock, one small piece at a time."] * 60)
BODY = {"message": "What is machine learning?"}


def test_the_fast_path_streams_what_the_sdk_relay_streams(mock, serve) -> None:
    fast, sdk = serve(fast_app()), serve(sdk_app())
    records = [collect_sync(f"{url}/chat/stream", BODY) for url in (fast, sdk)]
    for record in records:
        assert_streaming_headers(record)
        assert_one_terminal_event(record)
    assert records[0].text() == records[1].text() and records[0].text()
    assert records[0].events[-1].data == records[1].events[-1].data == '{"token":"","done":true}'


def test_paced_tokens_go_out_one_write_each(mock, serve) -> None:
    url = serve(fast_app())
    mock.script(token_interval_ms=10, times=1)
    paced = count_writes(url, "/chat/stream", BODY)
    assert paced.terminal == "done"
    # Nothing waits for company: each token arrives alone and is written alone.
    assert paced.tokens_per_write < 1.5, paced


def test_a_slow_reader_gets_what_piled_up_in_few_large_writes(mock, serve) -> None:
    fast, sdk = serve(fast_app()), serve(sdk_app())
    counts = {}
    for name, url in (("fast", fast), ("sdk", sdk)):
        mock.script(reply=LONG, times=1)
        counts[name] = count_writes(
            url, "/chat/stream", {**BODY, "max_tokens": 1_000}, pause_s=0.002, read_bytes=2_048,
            rcvbuf=4_096,
        )  # fmt: skip
        assert counts[name].terminal == "done" and counts[name].tokens > 600
    # The fast path batches what one network read brought; the SDK path writes each token.
    assert counts["fast"].tokens_per_write > 3, counts
    assert counts["sdk"].tokens_per_write < 1.5, counts
