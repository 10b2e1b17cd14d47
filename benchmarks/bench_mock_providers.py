"""Benchmark the mock providers at zero delay: tokens per second and time to first byte.

Run: `.venv/bin/python benchmarks/bench_mock_providers.py`. The mock runs in its own process
under uvicorn, pinned to one core with `taskset` when available; the client (raw httpx) runs
in this process, pinned to another core, so the figures are the mock's, not the client's.
The target: at least 30,000 tokens/s on one core and under 1 ms to first byte on loopback.
"""

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lessons.mock_providers.tokens import split_pieces  # noqa: E402

# The long reply the benchmark streams: many short words, so many tokens per byte.
LONG_MARKER = "bench-long"
LONG_REPLY = " ".join(["Tokens stream out of the mock, one small piece at a time."] * 2_000)
LONG_TOKENS = len(split_pieces(LONG_REPLY))
MEDIUM_MARKER = "bench-medium"
MEDIUM_REPLY = " ".join(["Tokens stream out of the mock, one small piece at a time."] * 200)
MEDIUM_TOKENS = len(split_pieces(MEDIUM_REPLY))


def serve(port: int) -> None:
    """The server process: the mock at zero delay, with the long replies scripted."""
    import uvicorn

    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    mock.script(prompt_contains=LONG_MARKER, reply=LONG_REPLY, times=None)
    mock.script(prompt_contains=MEDIUM_MARKER, reply=MEDIUM_REPLY, times=None)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await mock.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                report_inside(mock)
                await send({"type": "lifespan.shutdown.complete"})
                return

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def report_inside(mock: Any) -> None:
    """The mock's own share of the first-byte time, free of client-side noise."""
    for endpoint in ("chat.completions", "messages"):
        short = [
            r.first_token_at - r.started_at
            for r in mock.requests
            if r.endpoint == endpoint and r.first_token_at and r.tokens_planned < 20
        ]
        if short:
            print(
                f"{endpoint:16} inside the mock, from the request's arrival to its first "
                f"token handed to uvicorn: median {statistics.median(short) * 1e6:.0f} us, "
                f"p99 {percentile(short, 0.99) * 1e6:.0f} us",
                flush=True,
            )


async def baseline_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: a raw ASGI app answering one SSE event, to set the mock's figures against."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'data: {"content":"Hi"}\n\n'})


def serve_baseline(port: int) -> None:
    import uvicorn

    uvicorn.run(baseline_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, core: int | None, mode: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, mode, "--port", str(port)]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the mock did not start")


def request(provider: str, prompt: str) -> tuple[str, dict[str, object]]:
    messages = [{"role": "user", "content": prompt}]
    if provider == "anthropic":
        body = {"model": "claude-haiku-4-5", "max_tokens": 100_000, "messages": messages}
        return "/v1/messages", {**body, "stream": True}
    return "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages, "stream": True}


def single_stream_rate(client: httpx.Client, provider: str, repeats: int) -> float:
    """Tokens per second of one long stream, the best of `repeats` runs."""
    path, body = request(provider, f"{LONG_MARKER}: go")
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        size = 0
        with client.stream("POST", path, json=body) as response:
            for chunk in response.iter_raw():
                size += len(chunk)
        elapsed = time.perf_counter() - started
        assert size > LONG_TOKENS * 50, "the stream was cut short"
        best = max(best, LONG_TOKENS / elapsed)
    return best


async def concurrent_rate(base_url: str, provider: str, streams: int) -> float:
    """Tokens per second across `streams` simultaneous medium-length streams."""
    path, body = request(provider, f"{MEDIUM_MARKER}: go")
    limits = httpx.Limits(max_connections=streams)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one() -> None:
            async with client.stream("POST", path, json=body) as response:
                async for _ in response.aiter_raw():
                    pass

        await one()  # open a connection first: measure streaming, not connection set-up
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        elapsed = time.perf_counter() - started
    return streams * MEDIUM_TOKENS / elapsed


def first_byte_times(client: httpx.Client, provider: str, count: int) -> list[float]:
    """Seconds from sending a request to its first body byte, on a kept-alive connection."""
    path, body = request(provider, "Say hello.")
    times = []
    for _ in range(count + 20):
        started = time.perf_counter()
        with client.stream("POST", path, json=body) as response:
            chunks = response.iter_raw()
            next(chunks)
            times.append(time.perf_counter() - started)
            for _ in chunks:
                pass
    return times[20:]  # the first requests warm up both processes


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=500, help="first-byte samples")
    parser.add_argument("--streams", type=int, default=20, help="concurrent streams")
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    if args.serve_baseline:
        serve_baseline(args.port)
        return

    cores = sorted(os.sched_getaffinity(0))
    pinned = shutil.which("taskset") is not None and len(cores) >= 2
    server_core = cores[0] if pinned else None
    if pinned:
        os.sched_setaffinity(0, set(cores[1:]))
    print(f"python {sys.version.split()[0]}, {len(cores)} cores available")
    if pinned:
        print(f"server pinned to core {server_core} (taskset); client on cores {cores[1:]}")
    else:
        print("server NOT pinned (taskset missing or only one core): figures are indicative")

    port = args.port or free_port()
    server = start_server(port, server_core, "--serve")
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            for provider in ("openai", "anthropic"):
                rate = single_stream_rate(client, provider, repeats=3)
                print(f"{provider:9} one stream of {LONG_TOKENS:,} tokens: {rate:,.0f} tokens/s")
            for provider in ("openai", "anthropic"):
                rate = asyncio.run(concurrent_rate(base_url, provider, args.streams))
                print(
                    f"{provider:9} {args.streams} concurrent streams of {MEDIUM_TOKENS:,} "
                    f"tokens: {rate:,.0f} tokens/s"
                )
            for provider in ("openai", "anthropic"):
                report_first_byte(provider, first_byte_times(client, provider, args.requests))
    finally:
        server.terminate()
        server.wait(timeout=10)

    # The same measurement against a trivial app: what uvicorn and httpx cost on this machine.
    port = free_port()
    server = start_server(port, server_core, "--serve-baseline")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            report_first_byte("baseline", first_byte_times(client, "openai", args.requests))
    finally:
        server.terminate()
        server.wait(timeout=10)


def report_first_byte(label: str, times: list[float]) -> None:
    print(
        f"{label:9} time to first byte over {len(times)} requests: "
        f"median {statistics.median(times) * 1000:.2f} ms, "
        f"p99 {percentile(times, 0.99) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
