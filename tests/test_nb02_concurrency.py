"""Concurrency and disconnect checks for notebook 02's relays, each shown to catch its pitfall.

Generous by design: `served_one_after_another` compares how many streams overlapped, not absolute
times, and the disconnect checks read what the mock observed, so load on the machine cannot flip
them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lessons.toolkit.concurrency import (
    disconnect_after_first_token,
    measure_streams,
    upstream_after_disconnect,
    watch_after_disconnect,
)
from lessons.toolkit.testkit import collect_sync
from lessons.two_providers import def_generator_pitfall, sync_client_pitfall
from lessons.two_providers.app import create_app

HELLO = "Hello! How can I help you today?"
LONG_PROMPT = "What is machine learning?"  # a canned reply of 74 tokens

LESSON_ROUTES = [
    ("/relay/stream", {"provider": "openai"}),
    ("/relay/stream", {"provider": "anthropic"}),
    ("/anthropic/stream", {}),
    ("/responses/stream", {}),
]
ROUTE_IDS = ["relay-openai", "relay-anthropic", "anthropic-stream", "responses-stream"]
# Where the pitfall's generator lives, to count the server threads running it.
DEF_GENERATOR = (def_generator_pitfall.__file__, "events")


@pytest.mark.parametrize(("path", "extra"), LESSON_ROUTES, ids=ROUTE_IDS)
def test_lesson_relays_serve_10_streams_side_by_side(
    mock: Any, serve: Any, path: str, extra: dict
) -> None:
    url = serve(create_app())
    # Warm up first: the SDK builds its response models on first use (for a Responses stream,
    # half a second on the event loop), which would stall every stream of the first burst.
    collect_sync(url + path, {"message": "Say hello.", **extra})
    # A reply of 74 tokens, 10 ms apart: long enough that a pause of the whole process (a busy
    # machine, a garbage collection) cannot squeeze every reply into one burst.
    mock.set_timing(ttft_ms=50, token_interval_ms=10)
    run = asyncio.run(measure_streams(url, path, {"message": LONG_PROMPT, **extra}, 10))
    assert all(s.status == 200 and len(s.tokens) == 74 for s in run.streams)
    assert len({s.text for s in run.streams}) == 1
    assert not run.served_one_after_another, run.summary()
    assert not run.most_waited_for_a_whole_reply, run.summary()


def test_the_measurement_flags_the_sync_client_pitfall(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=50, token_interval_ms=25)
    url = serve(sync_client_pitfall.app)
    run = asyncio.run(
        measure_streams(url, "/chat/stream", {"message": "Say hello."}, 10, probe="/openapi.json")
    )
    assert all(s.status == 200 and s.text == HELLO for s in run.streams)
    assert run.served_one_after_another, run.summary()
    # Most clients saw a first token only after another client's whole reply had been sent.
    assert run.most_waited_for_a_whole_reply
    # And an ordinary request waited for the loop meanwhile.
    assert run.probe_ms is not None and run.probe_ms > 100


def test_def_generator_pitfall_does_not_block_the_loop(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=50, token_interval_ms=25)
    url = serve(def_generator_pitfall.app)
    run = asyncio.run(measure_streams(url, "/chat/stream", {"message": "Say hello."}, 10))
    assert all(s.text == HELLO for s in run.streams)
    assert not run.served_one_after_another, run.summary()


@pytest.mark.parametrize(("path", "extra"), LESSON_ROUTES, ids=ROUTE_IDS)
def test_disconnect_cancels_the_upstream(mock: Any, serve: Any, path: str, extra: dict) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    url = serve(create_app())
    first = asyncio.run(disconnect_after_first_token(url, path, {"message": LONG_PROMPT, **extra}))
    assert first == "Machine"
    observed = upstream_after_disconnect(mock)
    assert observed.outcome == "client_disconnected"
    assert observed.tokens_sent < observed.tokens_planned / 2


# The cyclic garbage collector's automatic runs are what the def generator's cleanup waits for;
# they depend on what the process allocates, so these tests switch them off and decide when it
# runs.


def test_a_def_generator_leaves_the_upstream_running_but_holds_no_thread(
    mock: Any, serve: Any
) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=10)
    url = serve(def_generator_pitfall.app)
    watch = asyncio.run(
        watch_after_disconnect(
            url,
            "/chat/stream",
            {"message": LONG_PROMPT},
            mock,
            generator=DEF_GENERATOR,
            sample_at_ms=(100, 300),
            automatic_collection=False,
        )
    )
    assert watch.first_token == "Machine"
    (_, sent_early, threads_early), (_, sent_late, threads_late) = watch.samples
    # Nobody was listening, yet the provider went on generating (and would bill) the reply...
    assert sent_late > sent_early
    assert watch.outcome == "completed" and watch.tokens_sent == watch.tokens_planned
    # ...while no server thread was inside the generator any more: nothing was holding one.
    assert threads_early == threads_late == 0


def test_a_garbage_collection_runs_the_def_generators_finally(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    url = serve(def_generator_pitfall.app)
    watch = asyncio.run(
        watch_after_disconnect(
            url,
            "/chat/stream",
            {"message": LONG_PROMPT},
            mock,
            generator=DEF_GENERATOR,
            sample_at_ms=(150,),
            collect_garbage_at_ms=200,
            automatic_collection=False,
        )
    )
    assert watch.samples[0][1] > 1, "the provider was still generating before the collection"
    assert watch.outcome == "client_disconnected"
    assert watch.collected_at_ms is not None and watch.collect_took_ms is not None
    # Closed during the collection: the generator was garbage only the cyclic collector frees.
    # (The mock notices a closed connection within a millisecond or so of the close.)
    assert (
        watch.collected_at_ms
        <= watch.ended_ms
        <= watch.collected_at_ms + watch.collect_took_ms + 50
    )
    assert watch.tokens_sent < watch.tokens_planned


def test_watching_leaves_the_collector_as_it_found_it(mock: Any, serve: Any) -> None:
    import gc

    url = serve(def_generator_pitfall.app)
    asyncio.run(
        watch_after_disconnect(
            url, "/chat/stream", {"message": "Say hello."}, mock, automatic_collection=False
        )
    )
    assert gc.isenabled()
