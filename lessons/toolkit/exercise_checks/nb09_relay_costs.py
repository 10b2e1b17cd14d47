"""Checkers for notebook 09: a cost model against a measurement, tasks per token, a fast parser."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.costs import TaskCounter, measure_costs
from lessons.toolkit.exercises import NotYet, run_sync
from lessons.toolkit.providers import sdk_env_pointed_at
from lessons.toolkit.testkit import collect_many

LONG = " ".join(["Tokens stream out of the mock, one small piece at a time."] * 35)
SHORT = "Tokens stream out."
PROVIDER_TTFT_MS = 100


@contextmanager
def _lab(
    apps: dict[str, Callable[[], Any]], ttft_ms: float = 0
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A mock of the checker's own (answering "short" and "long") and the apps against it."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=ttft_ms)
    mock.script(prompt_contains="long", reply=LONG, times=None)
    mock.script(prompt_contains="short", reply=SHORT, times=None)
    servers = [BackgroundServer(mock.app).start()]
    try:
        started: dict[str, Any] = {}
        with sdk_env_pointed_at(servers[0].url):
            for name, make in apps.items():
                servers.append(BackgroundServer(make()).start())
                started[name] = servers[-1]
        yield mock, started
    finally:
        for server in reversed(servers):
            server.stop()


def _core() -> Any:
    from lessons.relay_core import RelaySettings
    from lessons.sse_basics.app import create_app

    return create_app(RelaySettings(default_max_tokens=1_000))


@cache
def _measured_p99(streams: int) -> tuple[float, float]:
    """(CPU ms per request, measured p99 first token ms) of notebook 01's relay, once."""
    with _lab({"core": _core}, ttft_ms=PROVIDER_TTFT_MS) as (_mock, servers):
        server = servers["core"]
        costs = measure_costs(
            server, "/chat/stream", lambda m: {"message": m}, requests=20, streams=2
        )
        records = run_sync(
            collect_many(f"{server.url}/chat/stream", [{"message": "short"}] * streams)
        )
    firsts = sorted((r.arrivals[0] - r.started_at) * 1000 for r in records if r.arrivals)
    return costs.cpu_ms_per_request, firsts[min(len(firsts) - 1, math.ceil(0.99 * len(firsts)) - 1)]


def check_predict_p99(predict: Callable[[float, int, float], float]) -> None:
    for cpu, streams, ttft in ((1.0, 10, 400.0), (5.0, 100, 20.0), (2.0, 500, 300.0)):
        expected = ttft + 0.99 * streams * cpu
        got = float(predict(cpu, streams, ttft))
        if not 0.85 * expected <= got <= 1.15 * expected:
            raise NotYet(
                f"for {streams} streams of {cpu} ms CPU each and a provider answering in "
                f"{ttft:g} ms, the model gives about {expected:,.0f} ms; "
                f"you predicted {got:,.0f} ms"
            )
    cpu, measured = _measured_p99(40)
    predicted = float(predict(cpu, 40, PROVIDER_TTFT_MS))
    if not measured / 3 <= predicted <= measured * 3:
        raise NotYet(
            f"40 streams measured a p99 first token of {measured:,.0f} ms (CPU {cpu:.1f} ms per "
            f"request); your model predicts {predicted:,.0f} ms"
        )


def _pitfall() -> Any:
    from lessons.relay_costs import task_per_token_pitfall

    return task_per_token_pitfall.app


def check_tasks_per_token(measure: Callable[[TaskCounter, str], float]) -> None:
    counters = {"core": TaskCounter(_core()), "pitfall": TaskCounter(_pitfall())}
    apps = {name: (lambda c=c: c) for name, c in counters.items()}
    with _lab(apps) as (_mock, servers):
        for server in servers.values():
            run_sync(collect_many(f"{server.url}/chat/stream", [{"message": "short"}]))  # warm
        core = float(measure(counters["core"], servers["core"].url))
        pitfall = float(measure(counters["pitfall"], servers["pitfall"].url))
    # Exactly: a stream's fixed tasks (its request, the watchdog...) are not per token.
    if not -0.004 <= core <= 0.004:
        raise NotYet(f"the core's relay creates no task per token; you measured {core:.2f}")
    if not 0.8 <= pitfall <= 1.2:
        raise NotYet(f"the pitfall creates one task per token; you measured {pitfall:.2f}")


def _sdk_items(mock: Any, url: str, max_output_tokens: int | None, fault: Any) -> list[Any]:
    """What the SDK-based adapter makes of the same stream (the reference)."""
    import openai

    from lessons.relay_core import StreamFailed, openai_responses_events

    async def run() -> list[Any]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        try:
            extra = {"max_output_tokens": max_output_tokens} if max_output_tokens else {}
            stream = await client.responses.create(
                model="gpt-4o-mini", input="What is machine learning?", stream=True, **extra
            )
            items: list[Any] = []
            try:
                async for item in openai_responses_events(stream):
                    items.append(item)
            except (StreamFailed, openai.APIError):
                items.append("failed")
            return items
        finally:
            await client.close()

    if fault is not None:
        mock.script(fault=fault, times=1)
    return run_sync(run())


def check_fast_responses(parse: Callable[[dict[str, Any], list[Any]], None]) -> None:
    import httpx

    from lessons.mock_providers import Fault, MockProviders
    from lessons.relay_core import StreamFailed

    mock = MockProviders()
    with BackgroundServer(mock.app) as server:
        cases = {"a complete reply": (None, None), "cut by max_output_tokens": (16, None),
                 "a failure mid-stream": (None, Fault.error_event(3))}  # fmt: skip
        for name, (limit, fault) in cases.items():
            expected = _sdk_items(mock, server.url, limit, fault)
            if fault is not None:
                mock.script(fault=fault, times=1)
            body: dict[str, Any] = {
                "model": "gpt-4o-mini",
                "input": "What is machine learning?",
                "stream": True,
            }
            if limit:
                body["max_output_tokens"] = limit
            with httpx.stream("POST", f"{server.url}/v1/responses", json=body,
                              headers={"Authorization": "Bearer k"}) as response:  # fmt: skip
                raw = response.read()
            import orjson

            got: list[Any] = []
            try:
                for line in raw.split(b"\n"):
                    if line.startswith(b"data: "):
                        parse(orjson.loads(line[6:]), got)
            except StreamFailed:
                got.append("failed")
            expected = [i for i in expected if type(i).__name__ != "ToolCallDelta"]
            if got != expected:
                raise NotYet(
                    f"{name}: the SDK's adapter gives {expected[-3:]} at the end, yours {got[-3:]}"
                )
