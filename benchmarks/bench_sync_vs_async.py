"""Sync versus async relay, side by side in one run: time to first token, total time, ratios.

Each server runs in its own process, as in production: the mock providers, the sync-client pitfall
(lessons/two_providers/sync_client_pitfall.py) and notebook 01's relay on AsyncOpenAI and the
core's EventStream (lessons/sse_basics/app.py), both serving POST /chat/stream. For each
concurrency level the two relays are measured one after the other against the same mock, with
the measurement of lessons/toolkit/concurrency.py (the one the notebook and tests use).

    .venv/bin/python benchmarks/bench_sync_vs_async.py [--levels 1 10 50 100] [--ttft-ms 300]
        [--token-interval-ms 20] [--prompt "Why stream?"] [--repeats 3]

Prints one table per level and the sync/async ratios (median of the repeats).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lessons.toolkit.concurrency import ConcurrencyRun, measure_streams  # noqa: E402

RELAYS = {
    "sync client (pitfall)": "lessons.two_providers.sync_client_pitfall:app",
    "AsyncOpenAI": "lessons.sse_basics.app:app",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up")


@contextmanager
def process(args: list[str], env: dict[str, str], probe_url: str) -> Iterator[None]:
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_until_up(probe_url)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def servers(ttft_ms: float, interval_ms: float) -> Iterator[dict[str, str]]:
    python = sys.executable
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    env = {
        **os.environ,
        "OPENAI_BASE_URL": f"{mock_url}/v1",
        "OPENAI_API_KEY": "mock-key",
        "ANTHROPIC_BASE_URL": mock_url,
        "ANTHROPIC_API_KEY": "mock-key",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    mock_args = [python, "-m", "lessons.mock_providers", "--port", str(mock_port)]
    mock_args += ["--ttft-ms", str(ttft_ms), "--token-interval-ms", str(interval_ms)]
    mock_args += ["--log-level", "warning"]
    urls: dict[str, str] = {}
    with process(mock_args, env, f"{mock_url}/v1/models"):
        stack = []
        try:
            for label, target in RELAYS.items():
                port = free_port()
                args = [python, "-m", "uvicorn", target, "--port", str(port)]
                args += ["--log-level", "warning", "--no-access-log"]
                cm = process(args, env, f"http://127.0.0.1:{port}/openapi.json")
                cm.__enter__()
                stack.append(cm)
                urls[label] = f"http://127.0.0.1:{port}"
            yield urls
        finally:
            for cm in reversed(stack):
                cm.__exit__(None, None, None)


async def measure(urls: dict[str, str], level: int, prompt: str) -> dict[str, ConcurrencyRun]:
    runs = {}
    for label, url in urls.items():
        runs[label] = await measure_streams(
            url, "/chat/stream", {"message": prompt}, level, label=label, probe="/openapi.json"
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--ttft-ms", type=float, default=300)
    parser.add_argument("--token-interval-ms", type=float, default=20)
    parser.add_argument("--prompt", default="Why stream?")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"mock pace: first token {args.ttft_ms:g} ms, then {args.token_interval_ms:g} ms/token; "
        f"prompt {args.prompt!r}; {args.repeats} repeats per level (median shown)\n"
    )
    sync_label, async_label = RELAYS
    header = f"{'streams':>7} {'relay':22} {'median TTFT':>12} {'max TTFT':>10} {'total':>9} "
    header += f"{'GET probe':>10} {'overlap':>8}"
    with servers(args.ttft_ms, args.token_interval_ms) as urls:
        asyncio.run(measure(urls, 2, args.prompt))  # warm up connections and imports
        for level in args.levels:
            samples = [asyncio.run(measure(urls, level, args.prompt)) for _ in range(args.repeats)]
            print(header)
            for label in RELAYS:
                runs = [s[label] for s in samples]

                def med(values: list[float]) -> float:
                    return statistics.median(values)

                print(
                    f"{level:>7} {label:22} {med([r.median_ttft_ms for r in runs]):>9.0f} ms "
                    f"{med([r.max_ttft_ms for r in runs]):>7.0f} ms "
                    f"{med([r.wall_ms for r in runs]):>6.0f} ms "
                    f"{med([r.probe_ms or 0 for r in runs]):>7.0f} ms "
                    f"{min(r.peak_overlap for r in runs):>4}/{level}"
                )

            ratios = {
                attr: statistics.median(
                    getattr(s[sync_label], attr) / getattr(s[async_label], attr) for s in samples
                )
                for attr in ("median_ttft_ms", "max_ttft_ms", "wall_ms", "probe_ms")
            }
            print(
                f"{'':7} sync/async: median TTFT {ratios['median_ttft_ms']:.1f}x, max TTFT "
                f"{ratios['max_ttft_ms']:.1f}x, total {ratios['wall_ms']:.1f}x, "
                f"GET probe {ratios['probe_ms']:.0f}x\n"
            )


if __name__ == "__main__":
    main()
