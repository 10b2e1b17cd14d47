"""Wrong answers for notebook 04's exercises."""

_CUT_HEAD = """
from lessons.mock_providers import Fault
from lessons.toolkit.testkit import assert_error_event, assert_one_terminal_event, collect_sync

def test_cut_reply_is_not_done(url, mock):
"""

# A dropped connection: every relay notices that one (the notebook shows this attempt).
CUT_BY_A_DROP = (
    _CUT_HEAD
    + """
    mock.script(fault=Fault.drop(after_tokens=3))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_error_event(record, "stream_interrupted")
"""
)

# The provider's own error event: the SDK raises, so a trusting relay reports it too.
CUT_BY_AN_ERROR_EVENT = (
    _CUT_HEAD
    + """
    mock.script(fault=Fault.error_event(after_tokens=3))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_error_event(record)
"""
)

# The right fault, but it only checks that the stream ended once.
CUT_BUT_ANY_END = (
    _CUT_HEAD
    + """
    mock.script(fault=Fault.end_early(after_tokens=3))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_one_terminal_event(record)
"""
)

_PING_HEAD = """
from lessons.mock_providers import Fault
from lessons.toolkit.testkit import assert_one_terminal_event, collect_sync

def test_keepalive_during_a_silence(url, mock):
"""

# No silence at all: even a relay that pings has nothing to ping about.
PING_WITHOUT_A_SILENCE = (
    _PING_HEAD
    + """
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert record.comments
"""
)

# A silence shorter than the keep-alive interval.
PING_IN_A_SHORT_SILENCE = (
    _PING_HEAD
    + """
    mock.script(fault=Fault.stall(after_tokens=2, seconds=0.1))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert record.comments
"""
)

# A silence, but the test only checks that the reply survived it.
SILENCE_NOT_CHECKED = (
    _PING_HEAD
    + """
    mock.script(fault=Fault.stall(after_tokens=2, seconds=1.0))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_one_terminal_event(record)
"""
)

_LEAVE_HEAD = """
from lessons.mock_providers import Fault
from lessons.toolkit.testkit import StreamTimeoutError, assert_upstream_cancelled, collect_sync

def test_leaving_before_the_provider_answers(url, mock):
"""

# The right departure, but "it was cancelled at some point" holds for a late relay too.
LEAVE_OUTCOME_ONLY = (
    _LEAVE_HEAD
    + """
    mock.script(fault=Fault.stall(after_tokens=0, seconds=1.5, before_headers=True))
    try:
        collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"}, timeout=0.3)
    except StreamTimeoutError:
        pass
    assert_upstream_cancelled(mock)
"""
)

# The notebook's disconnect test: the provider had answered long before the client left.
LEAVE_AFTER_THREE_EVENTS = (
    _LEAVE_HEAD
    + """
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"}, stop_after=3)
    assert_upstream_cancelled(mock)
"""
)

# A slow first token: the provider has answered (headers sent), so every relay is watching.
LEAVE_DURING_A_SLOW_FIRST_TOKEN = (
    _LEAVE_HEAD
    + """
    mock.set_timing(ttft_ms=1000, token_interval_ms=20)
    try:
        collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"}, timeout=0.3)
    except StreamTimeoutError:
        pass
    observed = assert_upstream_cancelled(mock)
    assert observed.finished_at - observed.started_at < 1.0
"""
)

WRONG_ANSWERS = {
    "cut_reply_test": [CUT_BY_A_DROP, CUT_BY_AN_ERROR_EVENT, CUT_BUT_ANY_END],
    "keepalive_test": [PING_WITHOUT_A_SILENCE, PING_IN_A_SHORT_SILENCE, SILENCE_NOT_CHECKED],
    "open_leave_test": [
        LEAVE_OUTCOME_ONLY,
        LEAVE_AFTER_THREE_EVENTS,
        LEAVE_DURING_A_SLOW_FIRST_TOKEN,
    ],
}
