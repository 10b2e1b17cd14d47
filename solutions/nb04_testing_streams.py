"""Solutions for notebook 04 (the learner's stubs are generated from the regions below)."""
# ruff: noqa: E402, F811  (each exercise region is a notebook cell of its own: it imports what it uses)

from __future__ import annotations

# %% exercise: cut_reply_test  check: lessons.toolkit.exercise_checks.nb04_testing_streams:check_cut_reply_test
from lessons.mock_providers import Fault
from lessons.toolkit.testkit import assert_error_event, collect_sync


def test_cut_reply_is_not_done(url: str, mock) -> None:
    """Fail if a reply the provider cut short reaches the client as a complete one."""
    ### BEGIN SOLUTION
    # Not a drop (the connection breaks, which any relay notices): a stream that ends cleanly,
    # without the provider's finish reason. Only the missing end marker says it was cut.
    mock.script(fault=Fault.end_early(after_tokens=3))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert_error_event(record, "stream_interrupted")
    ### END SOLUTION


# %% end

# %% exercise: keepalive_test  check: lessons.toolkit.exercise_checks.nb04_testing_streams:check_keepalive_test
from lessons.mock_providers import Fault
from lessons.toolkit.testkit import collect_sync


def test_keepalive_during_a_silence(url: str, mock) -> None:
    """Fail unless the app sends a keep-alive comment while the provider is silent.

    The app under test sends `: ping` after 0.2 s without any other byte.
    """
    ### BEGIN SOLUTION
    # A silence well past the keep-alive interval, in the middle of the reply.
    mock.script(fault=Fault.stall(after_tokens=2, seconds=1.0))
    record = collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"})
    assert record.comments, f"no keep-alive in a 1 s silence: {record.summary()}"
    # The pings came during the silence: after the second token, before the third.
    second, third = record.arrivals[1], record.arrivals[2]
    assert any(second < at < third for at in record.comment_arrivals)
    ### END SOLUTION


# %% end

# %% exercise: open_leave_test  check: lessons.toolkit.exercise_checks.nb04_testing_streams:check_open_leave_test
import contextlib

from lessons.mock_providers import Fault
from lessons.toolkit.testkit import StreamTimeoutError, collect_sync


def test_leaving_before_the_provider_answers(url: str, mock) -> None:
    """Fail unless a client that gives up before the provider answers cancels the call then,
    not when the provider finally answers."""
    ### BEGIN SOLUTION
    # The provider sends nothing, not even its headers, for 1.5 s; the client gives up at 0.3 s.
    mock.script(fault=Fault.stall(after_tokens=0, seconds=1.5, before_headers=True))
    with contextlib.suppress(StreamTimeoutError):  # nothing arrives in 0.3 s: expected
        collect_sync(f"{url}/chat/stream", {"message": "What is machine learning?"}, timeout=0.3)
    observed = mock.wait_until_finished(mock.last_request(), timeout=5.0)
    assert observed.outcome == "client_disconnected", observed.outcome
    # On the mock's own clock: the call ended long before the provider would have answered.
    assert observed.finished_at - observed.started_at < 1.0, "cancelled only once it answered"
    ### END SOLUTION


# %% end
