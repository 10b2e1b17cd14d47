"""The chat service measured: the Redis store against the in-process one, two workers against one,
resuming, and memory. Ratios are taken within one run; the absolute figures depend on the
machine (the notebook shows this script's stored output, labelled as stored).

Every server is its own process, as deployed: the mock providers (`python -m
lessons.mock_providers`), each service worker (`python -m lessons.chat_service`, the draining
server on uvicorn), redis-server and nginx. The client is this process (httpx, asyncio).

    .venv/bin/pip install -r benchmarks/requirements.txt  # uvloop and httptools, as deployed
    .venv/bin/python benchmarks/bench_service.py [--quick] [--out benchmarks/results/service.json]

Scenarios:
- stores: one worker, direct: first token at 1 stream (median of sequential requests) and
  tokens per second at 50 streams of a zero-delay mock, in-process store versus Redis;
- workers: nginx in front of one worker, then two, 100 and 500 streams of 20 ms tokens arriving
  together: p99 first token and tokens per second;
- resume: two workers behind nginx, reconnects with Last-Event-ID at random moments: from the
  reconnect to its first replayed event, p50 and p99;
- memory: the worker's resident memory per open stream (200 slow streams), and Redis bytes per
  stored event (MEMORY USAGE of finished generations over their entries);
- collection: a worker's full garbage collection before and after `gc.freeze()`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lessons.toolkit.redis_server import redis_version, run_redis  # noqa: E402
from lessons.toolkit.service_cluster import ServiceCluster, run_cluster  # noqa: E402

CLIENTS = 600
TOKENS = {f"bench-{n:03d}": f"bench-{n:03d}-token-0123456789" for n in range(CLIENTS)}
ENV = {
    "RELAY_CLIENT_TOKENS": ",".join(f"{token}:{name}" for name, token in TOKENS.items()),
    "CHAT_SERVICE_RETAIN_S": "120",
}
LONG = {"messages": [{"role": "user", "content": "Explain streaming in one paragraph."}]}
TOKEN_EVENT = b"event: token"


def headers_for(n: int) -> dict[str, str]:
    """Client n's token: one client per stream, so that per-client budgets never refuse."""
    return {"Authorization": f"Bearer {TOKENS[f'bench-{n % CLIENTS:03d}']}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mock_providers(ttft_ms: float, interval_ms: float) -> Iterator[str]:
    """The mock providers in a process of their own; sets the SDK variables for the workers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "lessons.mock_providers",
        "--port",
        str(port),
        "--ttft-ms",
        str(ttft_ms),
        "--token-interval-ms",
        str(interval_ms),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        os.environ.update(
            OPENAI_BASE_URL=f"{url}/v1",
            OPENAI_API_KEY="mock-key",
            ANTHROPIC_BASE_URL=url,
            ANTHROPIC_API_KEY="mock-key",
        )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Stream:
    first_token_ms: float | None
    tokens: int
    ended_ms: float
    status: int


async def stream_once(http: Any, url: str, n: int, began: float) -> Stream:
    """POST one generation and read it to the end, counting token events as they arrive.

    A raw HTTP/1.1 client on asyncio streams (with `Connection: close`, so the body ends when
    the connection does), counting `event: token` in the raw bytes (keeping a tail across reads):
    500 streams in one client process cost it far less than an HTTP library's parsing would,
    which keeps the client from being what is measured."""
    host, _, port = url.removeprefix("http://").partition(":")
    body = json.dumps(LONG).encode()
    auth = headers_for(n)["Authorization"]
    head = (
        f"POST /chat/generations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sent = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
    first: float | None = None
    tokens = 0
    keep = len(TOKEN_EVENT) - 1
    try:
        writer.write(head + body)
        response_head = await reader.readuntil(b"\r\n\r\n")
        status = int(response_head.split(b" ", 2)[1])
        tail = b""
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            data = tail + chunk
            found = data.count(TOKEN_EVENT)
            if found and first is None:
                first = time.perf_counter()
            tokens += found
            tail = data[-keep:]
    finally:
        writer.close()
    return Stream(
        (first - sent) * 1000 if first is not None else None,
        tokens,
        (time.perf_counter() - began) * 1000,
        status,
    )


async def streams_at_once(url: str, count: int) -> dict[str, Any]:
    began = time.perf_counter()
    results = await asyncio.gather(*(stream_once(None, url, n, began) for n in range(count)))
    firsts = sorted(r.first_token_ms for r in results if r.first_token_ms is not None)
    wall_ms = max(r.ended_ms for r in results)
    total = sum(r.tokens for r in results)
    return {
        "streams": count,
        "ok": sum(r.status == 200 for r in results),
        "first_token_p50_ms": round(percentile(firsts, 50), 1),
        "first_token_p99_ms": round(percentile(firsts, 99), 1),
        "tokens": total,
        "wall_s": round(wall_ms / 1000, 2),
        "tokens_per_s": round(total / (wall_ms / 1000)),
    }


async def sequential_first_tokens(url: str, count: int) -> list[float]:
    out = []
    for n in range(count):
        result = await stream_once(None, url, n, time.perf_counter())
        assert result.first_token_ms is not None
        out.append(result.first_token_ms)
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- the scenarios ------------------------------------------------------------------------------


def stores(quick: bool) -> dict[str, Any]:
    """One worker, direct, the in-process store against Redis: first token and throughput.

    Each store's worker is measured in alternating rounds (memory, Redis, memory, Redis...),
    so that a machine busy for a while weighs on both; the medians are compared."""
    sequential, concurrent, rounds = (15, 50, 2) if quick else (40, 50, 3)
    firsts: dict[str, list[float]] = {"memory": [], "redis": []}
    rates: dict[str, list[int]] = {"memory": [], "redis": []}
    with (
        run_redis() as redis,
        mock_providers(0, 0),
        run_cluster(None, workers=1, env=ENV, nginx=False) as in_memory,
        run_cluster(redis.url, workers=1, env=ENV, nginx=False) as on_redis,
    ):
        urls = {"memory": in_memory.workers[0].url, "redis": on_redis.workers[0].url}
        for url in urls.values():
            asyncio.run(sequential_first_tokens(url, 3))  # warm up
        for _round in range(rounds):
            for store, url in urls.items():
                firsts[store] += asyncio.run(sequential_first_tokens(url, sequential))
                busy = asyncio.run(streams_at_once(url, concurrent))
                rates[store].append(busy["tokens_per_s"])
                redis.flush()
    out: dict[str, Any] = {
        store: {
            "first_token_median_ms": round(statistics.median(firsts[store]), 2),
            "first_token_p90_ms": round(percentile(firsts[store], 90), 2),
            f"tokens_per_s_at_{concurrent}_streams": rates[store],
        }
        for store in firsts
    }
    out["redis_first_token_overhead_ms"] = round(
        statistics.median(firsts["redis"]) - statistics.median(firsts["memory"]), 2
    )
    out["redis_throughput_ratio"] = round(
        statistics.median(rates["redis"]) / statistics.median(rates["memory"]), 2
    )
    return out


def workers(quick: bool) -> dict[str, Any]:
    """nginx in front of 1, then 2 workers: many streams of 20 ms tokens arriving together."""
    levels = (100, 500)
    out: dict[str, Any] = {}
    with run_redis() as redis, mock_providers(0, 20):
        for count in (1, 2):
            with run_cluster(redis.url, workers=count, env=ENV) as cluster:
                asyncio.run(streams_at_once(cluster.url, 5))  # warm up
                out[f"{count}_worker{'s' if count > 1 else ''}"] = {
                    str(level): asyncio.run(streams_at_once(cluster.url, level)) for level in levels
                }
            redis.flush()
    return out


async def _resume_latencies(cluster: ServiceCluster, generations: int, per: int, seed: int):
    """Reconnect `per` times to each of `generations` live generations, at random moments."""
    rng = random.Random(seed)
    latencies: list[float] = []
    landed: set[str] = set()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def one(n: int) -> None:
            headers = headers_for(n)
            async with http.stream(
                "POST", f"{cluster.url}/chat/generations", json=LONG, headers=headers
            ) as response:
                generation_id = response.headers["x-generation-id"]
                last = None
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        last = line[4:]
                        if rng.random() < 0.3:
                            break
            for _ in range(per):
                # Away long enough for the reply to go on without this reader (the mock sends a
                # token every 20 ms): its first event on return is replayed from the store, not
                # the next live one, which would measure the mock's pace instead.
                await asyncio.sleep(rng.uniform(0.05, 0.1))
                sent = time.perf_counter()
                path = f"{cluster.url}/chat/generations/{generation_id}/stream"
                async with http.stream(
                    "GET", path, headers={**headers, "Last-Event-ID": last or ""}
                ) as r:
                    if r.status_code == 204:
                        return
                    landed.add(r.headers["x-served-by"])
                    got_first = False
                    async for line in r.aiter_lines():
                        if line.startswith("id: "):
                            if not got_first:
                                latencies.append((time.perf_counter() - sent) * 1000)
                                got_first = True
                            last = line[4:]
                            if rng.random() < 0.15:
                                break

        await asyncio.gather(*(one(n) for n in range(generations)))
    return latencies, landed


def resume(quick: bool) -> dict[str, Any]:
    generations, per = (10, 10) if quick else (20, 10)
    with (
        run_redis() as redis,
        mock_providers(0, 20),
        run_cluster(redis.url, workers=2, env=ENV) as c,
    ):
        latencies, landed = asyncio.run(_resume_latencies(c, generations, per, seed=7))
    return {
        "reconnects": len(latencies),
        "workers_reached": len(landed),
        "reconnect_to_first_event_p50_ms": round(percentile(latencies, 50), 1),
        "reconnect_to_first_event_p99_ms": round(percentile(latencies, 99), 1),
        "latencies_ms": [round(v, 2) for v in latencies],
    }


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def _hold_streams(url: str, count: int, seconds: float) -> None:
    """`count` streams open at once, each read for `seconds`, then closed."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(n: int) -> None:
            async with http.stream(
                "POST", f"{url}/chat/generations", json=LONG, headers=headers_for(n)
            ) as response:
                with contextlib_suppress():
                    async with asyncio.timeout(seconds):
                        async for _ in response.aiter_raw():
                            pass

        await asyncio.gather(*(one(n) for n in range(count)))


class contextlib_suppress:  # TimeoutError only: the stream is cut on purpose
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: object) -> bool:
        return kind is TimeoutError


def memory(quick: bool) -> dict[str, Any]:
    count = 100 if quick else 200
    out: dict[str, Any] = {}
    with run_redis() as redis:
        for store, redis_url in (("memory", None), ("redis", redis.url)):
            # Slow tokens: every stream stays open while the worker's memory is read.
            with (
                mock_providers(0, 400),
                run_cluster(redis_url, workers=1, env=ENV, nginx=False) as c,
            ):
                worker = c.workers[0]
                url = worker.url
                asyncio.run(_hold_streams(url, 5, 1.0))  # warm up: imports, pools, caches
                before = _rss(worker.process.pid)
                holder = asyncio.run(_measure_while_held(url, count, worker.process.pid))
                out[store] = {
                    "streams": count,
                    "rss_before_mb": round(before / 2**20, 1),
                    "rss_with_streams_mb": round(holder / 2**20, 1),
                    "bytes_per_open_stream": round((holder - before) / count),
                }
        # Redis bytes per stored event: finished generations, measured by Redis itself.
        with mock_providers(0, 0), run_cluster(redis.url, workers=1, env=ENV, nginx=False) as c:
            redis.flush()
            asyncio.run(streams_at_once(c.workers[0].url, 20))
            client = redis.client()
            keys = [k for k in client.scan_iter(match="chat:{*}:events")]
            used = sum(client.memory_usage(k, samples=0) or 0 for k in keys)
            entries = sum(client.xlen(k) for k in keys)
            meta = [k for k in client.scan_iter(match="chat:{*}:meta")]
            meta_bytes = sum(client.memory_usage(k, samples=0) or 0 for k in meta)
            frame_bytes = sum(
                len(fields[b"f"])
                for k in keys
                for _id, fields in client.xrange(k)
                if b"f" in fields
            )
            out["redis_stream"] = {
                "generations": len(keys),
                "entries": entries,
                "bytes_per_event": round(used / entries),
                "payload_bytes_per_event": round(frame_bytes / entries),
                "meta_bytes_per_generation": round(meta_bytes / max(1, len(meta))),
            }
    return out


async def _measure_while_held(url: str, count: int, pid: int) -> int:
    task = asyncio.ensure_future(_hold_streams(url, count, 6.0))
    await asyncio.sleep(4.0)  # every stream open, a few tokens in
    rss = _rss(pid)
    await task
    return rss


_COLLECTION = """
import gc, json, time
import lessons.chat_service.app
from lessons.chat_service.app import create_app
create_app()

def full_collection_ms():
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        gc.collect()
        best = min(best, (time.perf_counter() - started) * 1000)
    return round(best, 2)

tracked = len(gc.get_objects())
before = full_collection_ms()
gc.freeze()
print(json.dumps({"objects_tracked": tracked, "full_collection_ms": before,
                  "full_collection_after_freeze_ms": full_collection_ms()}))
"""


def collection(quick: bool) -> dict[str, Any]:
    """A worker's full garbage collection, before and after `gc.freeze()` (what serve() does
    after startup): the fastest of five, in a fresh process that has imported and built the app."""
    done = subprocess.run(
        [sys.executable, "-c", _COLLECTION], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 2 minutes)")
    parser.add_argument(
        "--only", nargs="*", choices=["stores", "workers", "resume", "memory", "collection"]
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.json"
    )
    args = parser.parse_args()
    # The client is this process: a full collection of what its imports hold (about 100 ms)
    # would stall every request in flight and show up as the servers' latency. Measured: the
    # resume p99 was 138-170 ms with it, the slowest of 200 reconnects 36 ms without.
    gc.freeze()
    # 500 streams through nginx: this process holds 500+ sockets.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    scenarios = {
        "stores": stores,
        "workers": workers,
        "resume": resume,
        "memory": memory,
        "collection": collection,
    }
    chosen = args.only or list(scenarios)
    results: dict[str, Any] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text()).get("results", {})
    for name in chosen:
        began = time.monotonic()
        print(f"{name} ...", flush=True)
        results[name] = scenarios[name](args.quick)
        summary = {k: v for k, v in results[name].items() if k != "latencies_ms"}
        print(
            json.dumps(summary, indent=1)[:3000], f"({time.monotonic() - began:.0f} s)", flush=True
        )
    record = {
        "measured": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis": redis_version(),
            "system": platform.platform(),
            "server_stack": {
                "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
                "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
            },
        },
        "conditions": {
            "mock_reply_tokens": 93,
            "quick": args.quick,
            "processes": "mock, each worker, redis-server and nginx in their own processes",
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()


__all__ = ["Stream", "asdict"]
