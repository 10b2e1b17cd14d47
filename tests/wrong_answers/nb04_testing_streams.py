"""Wrong answers for notebook 04's exercises."""

CHECKS_ONLY_THE_TEXT = """
from lessons.toolkit.testkit import assert_one_terminal_event, collect_sync

def test_reply_is_streamed(url, mock):
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_one_terminal_event(record)
    assert record.text() == mock.last_request().reply_text
"""

HEADERS_ONLY = """
from lessons.toolkit.testkit import assert_streaming_headers, collect_sync

def test_reply_is_streamed(url, mock):
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_streaming_headers(record)
"""

WALL_CLOCK_BOUND = """
from lessons.toolkit.testkit import collect_sync

def test_first_event_is_early(url, mock):
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert record.offsets_ms()[0] < 50
"""

GENEROUS_WALL_CLOCK_BOUND = """
from lessons.toolkit.testkit import collect_sync

def test_first_event_is_early(url, mock):
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert record.offsets_ms()[0] < 10_000
"""

ONLY_COUNTS_EVENTS = """
from lessons.toolkit.testkit import collect_sync

def test_disconnect_closes_upstream(url, mock):
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    record = collect_sync(f"{url}/chat/stream", {"message": "Say hello."}, stop_after=3)
    assert len(record.events) == 3
"""

EXPECTS_COMPLETION = """
from lessons.toolkit.testkit import collect_sync

def test_disconnect_closes_upstream(url, mock):
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"}, stop_after=3)
    observed = mock.last_request()
    mock.wait_until_finished(observed, timeout=5)
    assert observed.tokens_sent > 0
"""

WRONG_ANSWERS = {
    "buffering_test": [CHECKS_ONLY_THE_TEXT, HEADERS_ONLY],
    "disconnect_test": [ONLY_COUNTS_EVENTS, EXPECTS_COMPLETION],
    "robust_timing": [
        WALL_CLOCK_BOUND,
        GENEROUS_WALL_CLOCK_BOUND,
        CHECKS_ONLY_THE_TEXT.replace("test_reply_is_streamed", "test_first_event_is_early"),
    ],
}
