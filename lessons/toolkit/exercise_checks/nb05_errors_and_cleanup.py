"""Checkers for notebook 05's exercises."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lessons.relay_core import RelaySettings
from lessons.relay_core.watchdog import STREAMING, Watchdog
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.providers import sdk_env_pointed_at

# --- reasoning_deadlines -----------------------------------------------------------------------
#
# The checker replays scenarios through the core's own Watchdog (its `next_due`, which decides
# what happens next in a real stream), on a simulated clock: minutes of stream in microseconds.

OPENED_AT = 0.5  # the provider answers (its response headers) half a second after the request
BALANCER_IDLE_S = 4.0
THINKS_S = 45.0
GIVE_UP_FIRST_S = 60.0
TOKEN_GAP_S = 2.0
STUCK_S = 12.0
LONG_REPLY_S = 600.0
MAX_REPLY_S = 900.0
RELEASE_FROZEN_S = 8.0
HORIZON_S = 2_000.0


@dataclass(frozen=True)
class Replay:
    """How a simulated stream ended: `reason` None for a complete reply."""

    reason: str | None
    at: float
    largest_gap_s: float  # the longest the client's connection carried no byte


def _every(start: float, gap: float, end: float) -> list[float]:
    count = int((end - start) / gap) + 1
    return [start + n * gap for n in range(count)]


def replay(
    settings: RelaySettings,
    tokens: Iterable[float],
    *,
    finish_at: float | None = None,
    frozen_write_at: float | None = None,
) -> Replay:
    """Run the watchdog's schedule for a stream whose pieces arrive at `tokens` (seconds from the
    request); the reply ends at `finish_at`, or a write that never ends starts at
    `frozen_write_at`, or nothing more happens."""
    dog = Watchdog(settings, 0.0)
    dog.opened(OPENED_AT)
    dog.last_write_at = dog.waiting_since = OPENED_AT  # the response has started
    last_write, largest = OPENED_AT, 0.0

    def until(moment: float) -> Replay | None:
        nonlocal last_write, largest
        while True:
            due, what = dog.next_due()
            if due >= moment:
                return None
            largest = max(largest, due - last_write)
            if what != "keepalive":
                return Replay(what, due, largest)
            last_write = dog.last_write_at = due

    for at in tokens:
        if frozen_write_at is not None and at >= frozen_write_at:
            break
        if (ended := until(at)) is not None:
            return ended
        dog.phase = STREAMING
        largest = max(largest, at - last_write)
        last_write = dog.last_write_at = dog.waiting_since = at
    if frozen_write_at is not None:
        if (ended := until(frozen_write_at)) is not None:
            return ended
        dog.writing_since = frozen_write_at
    end = finish_at if finish_at is not None else HORIZON_S
    if (ended := until(end)) is not None:
        return ended
    if finish_at is None:
        return Replay("nothing", HORIZON_S, largest)
    return Replay(None, finish_at, max(largest, finish_at - last_write))


def _ended(replay: Replay) -> str:
    if replay.reason is None:
        return f"completed at {replay.at:.1f} s"
    if replay.reason == "nothing":
        return f"was still open {HORIZON_S:.0f} s later"
    return f"was ended at {replay.at:.1f} s by the {replay.reason.replace('_', ' ')}"


def check_reasoning_deadlines(candidate: Callable[[], Any]) -> None:
    settings = candidate()
    if not isinstance(settings, RelaySettings):
        raise NotYet(f"return a RelaySettings, not {type(settings).__name__}")
    first = OPENED_AT + THINKS_S
    thinker = replay(
        settings, _every(first, TOKEN_GAP_S, first + 60), finish_at=first + 60 + TOKEN_GAP_S
    )
    if thinker.reason is not None:
        raise NotYet(
            f"a reply whose first token comes {THINKS_S:.0f} s after the provider answered "
            f"{_ended(thinker)}: that model is allowed {THINKS_S:.0f} s to think"
        )
    if thinker.largest_gap_s >= BALANCER_IDLE_S:
        raise NotYet(
            "while the model was thinking, the connection carried no byte for "
            f"{thinker.largest_gap_s:.1f} s: the load balancer cuts it after "
            f"{BALANCER_IDLE_S:.0f} s"
        )
    never = replay(settings, [])
    if never.reason != "first_token_deadline" or never.at > OPENED_AT + GIVE_UP_FIRST_S:
        raise NotYet(
            f"a model that never starts: its stream {_ended(never)}; it must be given up on "
            f"{GIVE_UP_FIRST_S:.0f} s after the provider answered"
        )
    last = 21.0
    stuck = replay(settings, _every(1.0, TOKEN_GAP_S, last))
    if stuck.reason != "idle_deadline" or stuck.at > last + STUCK_S:
        raise NotYet(
            f"a reply that stops after its piece at {last:.0f} s {_ended(stuck)}; after "
            f"{STUCK_S:.0f} s of silence it is stuck and must be ended"
        )
    if stuck.largest_gap_s >= BALANCER_IDLE_S:
        raise NotYet(
            "while a stuck reply was silent, the connection carried no byte for "
            f"{stuck.largest_gap_s:.1f} s: the load balancer cuts it after {BALANCER_IDLE_S:.0f} s"
        )
    long = replay(settings, _every(1.0, TOKEN_GAP_S, LONG_REPLY_S), finish_at=LONG_REPLY_S + 1)
    if long.reason is not None:
        raise NotYet(f"a ten-minute reply, one piece every 2 s, {_ended(long)}")
    endless = replay(settings, _every(1.0, 1.0, HORIZON_S))
    if endless.reason != "total_deadline" or endless.at > MAX_REPLY_S:
        raise NotYet(
            f"a reply that never ends, one piece a second, {_ended(endless)}: no reply may take "
            f"more than {MAX_REPLY_S / 60:.0f} minutes"
        )
    frozen_at = 20.0
    frozen = replay(settings, _every(1.0, TOKEN_GAP_S, 300.0), frozen_write_at=frozen_at)
    if frozen.reason != "reader_stalled" or frozen.at > frozen_at + RELEASE_FROZEN_S:
        raise NotYet(
            f"a client that stopped reading at {frozen_at:.0f} s: the stream {_ended(frozen)}; "
            f"its slot and the provider must be released within {RELEASE_FROZEN_S:.0f} s"
        )


# --- retry_after_leaving -----------------------------------------------------------------------


def check_retry_after_leaving(candidate: Callable[[str, Any], Any]) -> None:
    from lessons.mock_providers import MockProviders
    from lessons.resilient_relay import tracked_streams_pitfall
    from lessons.resilient_relay.relay import create_app

    mock = MockProviders()
    with BackgroundServer(mock.app) as mock_server:
        with sdk_env_pointed_at(mock_server.url):
            relay = BackgroundServer(create_app()).start()
            pitfall = BackgroundServer(tracked_streams_pitfall.app).start()
        try:
            mock.reset()
            answer = candidate(relay.url, mock)
            seen = mock.requests
            if not seen or seen[0].status != 429:
                raise NotYet(
                    "the mock's first request was not refused with a 429: script the fault "
                    "(one 429 the SDK may retry after 0.5 s) before you send the request"
                )
            if answer is not True:
                raise NotYet(
                    "the lesson relay does cancel the retry when its client leaves (the mock saw "
                    f"{len(seen)} request(s)), but you returned {answer!r}: did your client leave "
                    "before the SDK's 0.5 s back-off was over?"
                )
            mock.reset()
            if candidate(pitfall.url, mock) is not False:
                raise NotYet(
                    "tracked_streams_pitfall awaits the provider in the route, where nothing "
                    "watches the client: its SDK retries after the client left, and the provider "
                    "generates a reply for nobody. You returned True for it: read the mock's "
                    "requests only once the retry would have arrived"
                )
        finally:
            relay.stop()
            pitfall.stop()


# --- budgets_per_worker ------------------------------------------------------------------------

ALPHA_TOKEN = "alpha-client-token-0123456789"
PER_SERVER = 2
CANDIDATE_LIMIT_S = 15.0


def _within_time(candidate: Callable[..., Any], *args: Any) -> Any:
    """Run the candidate in a thread: a loop that never ends is a "not yet", not a hung cell."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(candidate(*args))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="nb05-exercise")
    thread.start()
    thread.join(CANDIDATE_LIMIT_S)
    if thread.is_alive():
        raise NotYet(f"your function was still running after {CANDIDATE_LIMIT_S:.0f} s")
    if error:
        raise error[0]
    return result[0]


def _released(apps: list[Any]) -> bool:
    """Every stream the client held has ended, on every server (their budgets say so)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if all(app.state.budgets.open_streams("alpha") == 0 for app in apps):
            return True
        time.sleep(0.02)
    return False


def check_budgets_per_worker(candidate: Callable[[list[str], str], Any]) -> None:
    from lessons.mock_providers import MockProviders
    from lessons.relay_core import BudgetSettings, ProtectionSettings
    from lessons.resilient_relay.protected import create_app

    protection = ProtectionSettings(
        tokens={ALPHA_TOKEN: "alpha"},
        budgets=BudgetSettings(
            max_concurrent_streams=PER_SERVER, burst=200, requests_per_minute=6_000
        ),
    )
    # Replies that take 2 s to start: a stream opened now is still open a second later.
    mock = MockProviders(ttft_ms=2_000)
    with BackgroundServer(mock.app) as mock_server:
        with sdk_env_pointed_at(mock_server.url):
            apps = [create_app(protection=protection) for _ in range(2)]
            servers = [BackgroundServer(app).start() for app in apps]
        try:
            one = _within_time(candidate, [servers[0].url], ALPHA_TOKEN)
            if not _released(apps):
                raise NotYet("streams you opened were still open after your function returned")
            if one != PER_SERVER:
                hint = (
                    " Was each stream still open when you opened the next?"
                    if isinstance(one, int) and one > PER_SERVER
                    else ""
                )
                raise NotYet(
                    f"one server lets this client hold {PER_SERVER} streams at once; you counted "
                    f"{one!r}.{hint}"
                )
            both = _within_time(candidate, [s.url for s in servers], ALPHA_TOKEN)
            if not _released(apps):
                raise NotYet("streams you opened were still open after your function returned")
            if both != 2 * PER_SERVER:
                raise NotYet(
                    f"two servers, each counting in its own memory, let this client hold "
                    f"{2 * PER_SERVER} streams at once; you counted {both!r}"
                )
        finally:
            for server in servers:
                server.stop()
