"""What a streaming relay costs: the floor, the simplest peers, every lesson relay, side by side.

Run: `.venv/bin/pip install -r benchmarks/requirements.txt` once (uvloop and httptools, the server
stack the figures were measured on), then `.venv/bin/python benchmarks/bench_relays.py` (about
half an hour; `--relays a,b` for some, `--quick` for a smoke run). The mock provider and each
relay run in processes of their own, the mock pinned to core 0 and the relay to core 1 when
`taskset` is available; the load comes from a lean asyncio client in this process (raw HTTP/1.1,
no parsing beyond counting events), so the figures are the relay's. Every relay takes the body
its route expects and sends the mock's Chat Completions endpoint the same request (a system
prompt, usage asked for, the core's token cap); "floor" is the client talking to the mock directly.

Measured for each relay, in each of `--rounds` rounds (the result is the median):
- first-token overhead at 1 stream: median time to first token over sequential requests, minus
  the floor's, measured in the same run;
- tokens per second at 50 streams, and the relay's CPU per token (its process's CPU time over the
  run, divided by the tokens it relayed), with the mock at zero delay;
- CPU per request: short replies, the relay's CPU time divided by the requests;
- p50 and p99 first token and total time at 10, 100 and 500 streams started together, 20 ms
  between tokens;
- memory per open stream: the relay's resident memory with 500 streams waiting for their first
  token, minus its memory before, over 500.

The results go to `benchmarks/results/relays.json` (notebook 09 plots them) and are printed as a
table with ratios against the floor and the best peer.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "relays.json"

# The mock's replies, chosen by a marker in the prompt.
SHORT = ("bench-short", "Tokens stream out of the mock.")
LONG = ("bench-long", " ".join(["Tokens stream out of the mock, one small piece at a time."] * 55))
PACED = ("bench-paced", " ".join(["Tokens stream out of the mock, one small piece at a time."] * 4))
WAIT = ("bench-wait", "Tokens stream out of the mock.")
FIRST_TOKEN = b"Tokens"


def _message(marker: str) -> dict[str, Any]:
    return {"message": marker}


def _relay_message(marker: str) -> dict[str, Any]:
    return {"message": marker, "provider": "openai"}


def _conversation(marker: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": marker}]}


def _ui_turn(marker: str) -> dict[str, Any]:
    # useChat's body; a chat id of its own per request (the chat keeps its history).
    chat = f"bench-{next(_CHAT_IDS)}"
    message = {"id": f"{chat}-1", "role": "user", "parts": [{"type": "text", "text": marker}]}
    return {"id": chat, "messages": [message], "trigger": "submit-message"}


_CHAT_IDS = itertools.count()

# name -> (kind, target, route, request body for a marker)
RELAYS: dict[str, tuple[str, str, str, Callable[[str], dict[str, Any]]]] = {
    "floor": ("floor", "", "/v1/chat/completions", _message),
    "raw-forward": ("peer", "raw-forward", "/chat/stream", _message),
    "raw-forward-aiohttp": ("peer", "raw-forward-aiohttp", "/chat/stream", _message),
    "raw-parse": ("peer", "raw-parse", "/chat/stream", _message),
    "plain-sdk": ("peer", "plain-sdk", "/chat/stream", _message),
    "sse-starlette": ("peer", "sse-starlette", "/chat/stream", _message),
    "fastapi-native": ("peer", "fastapi-native", "/chat/stream", _message),
    "nb01-chat-stream": ("lesson", "lessons.sse_basics.app", "/chat/stream", _message),
    "nb01-chat-events": ("lesson", "lessons.sse_basics.app", "/chat/events", _message),
    "nb02-relay": ("lesson", "lessons.two_providers.app", "/relay/stream", _relay_message),
    "nb03-langchain": ("lesson", "lessons.chain_streaming.app", "/langchain/stream", _message),
    "nb05-resilient": ("lesson", "lessons.resilient_relay.relay", "/chat/stream", _message),
    "nb07-service": ("lesson", "lessons.chat_service.app", "/chat/generations", _conversation),
    "nb08-chat": ("lesson", "lessons.chat_ui.app", "/api/chat", _ui_turn),
    "nb09-fast": ("lesson", "lessons.relay_costs.app", "/chat/stream", _message),
    "nb09-task-per-token": (
        "pitfall",
        "lessons.relay_costs.task_per_token_pitfall",
        "/chat/stream",
        _message,
    ),
}
# The service is deployed: it refuses requests without a client token, and budgets each client's
# concurrent streams; one client per stream, so budgets never refuse the benchmark's load.
DEPLOYED = {"nb07-service"}
CLIENTS = 600
CLIENT_TOKENS = [f"bench-{n:03d}-token-0123456789" for n in range(CLIENTS)]
PEERS = ("plain-sdk", "sse-starlette", "fastapi-native")
# A variant of a relay: `name+aiohttp` (the SDK's aiohttp transport), `name+uvloop` (uvicorn on
# uvloop and httptools), `name+asyncio` (uvicorn on asyncio and h11), `name+2workers` (two worker
# processes, not pinned: the second core is what a second worker can use).
VARIANTS = {"aiohttp", "uvloop", "asyncio", "2workers"}


def split_variant(name: str) -> tuple[str, set[str]]:
    base, *variants = name.split("+")
    unknown = set(variants) - VARIANTS
    if base not in RELAYS or unknown:
        raise SystemExit(
            f"unknown relay {name!r}: relays {sorted(RELAYS)}, variants {sorted(VARIANTS)}"
        )
    if "2workers" in variants and RELAYS[base][0] != "lesson":
        raise SystemExit(f"{name}: +2workers needs a lesson relay (an app importable by name)")
    return base, set(variants)


# --- the processes -----------------------------------------------------------------------------


def serve_mock(port: int) -> None:
    import uvicorn

    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    for marker, reply in (SHORT, LONG):
        mock.script(prompt_contains=marker, reply=reply, times=None)
    mock.script(prompt_contains=PACED[0], reply=PACED[1], times=None, token_interval_ms=20)
    mock.script(prompt_contains=WAIT[0], reply=WAIT[1], times=None, ttft_ms=60_000)
    # Observations would grow without bound over a benchmark: keep none.
    mock._requests = _Forgetful()  # type: ignore[attr-defined]
    uvicorn.run(mock.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class _Forgetful(list):  # type: ignore[type-arg]
    def append(self, item: Any) -> None:
        pass


def server_stack(loop: str, http: str) -> dict[str, str]:
    """What uvicorn's `auto` resolves to here: uvloop and httptools when they are installed."""
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {"loop": loop, "http": http}


def serve_relay(name: str, port: int, loop: str, http: str) -> None:
    import uvicorn

    name, variants = split_variant(name)
    if "uvloop" in variants:
        loop, http = "uvloop", "httptools"
    if "asyncio" in variants:
        loop, http = "asyncio", "h11"
    kind, target, _route, _body = RELAYS[name]
    if "2workers" in variants:
        # Several workers import the app by name, so it runs with its default settings.
        uvicorn.run(
            f"{target}:app", host="127.0.0.1", port=port, log_level="error", access_log=False,
            loop=loop, http=http, backlog=2048, workers=2,
        )  # fmt: skip
        return
    if kind == "peer":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from peers import PEERS as peer_factories

        app = peer_factories[target]()
    elif kind == "pitfall":
        import importlib

        app = importlib.import_module(target).app
    else:
        import importlib

        from lessons.relay_core import RelaySettings

        module = importlib.import_module(target)
        # Budgets off (no client tokens): the benchmark measures the relay, not the limiter.
        settings = RelaySettings(
            max_tokens_cap=10_000,
            default_max_tokens=10_000,
            http_client="aiohttp" if "aiohttp" in variants else "httpx",
        )
        app = module.create_app(settings)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        loop=loop,
        http=http,
        backlog=2048,
        timeout_keep_alive=30,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(args: list[str], core: int | None, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, *args]
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


# --- the client ----------------------------------------------------------------------------------


@dataclass
class Stream:
    started: float
    first: float | None = None
    ended: float | None = None
    events: int = 0
    status: int = 0


def blank_lines(data: bytes) -> int:
    """Events end with a blank line: LF LF, or CR LF CR LF (sse-starlette's default). HTTP chunk
    framing has CR LF between chunks, which makes neither, except the terminating chunk's."""
    return data.count(b"\n\n") + data.count(b"\r\n\r\n")


def request_bytes(name: str, marker: str, port: int, n: int = 0) -> bytes:
    """The HTTP request for stream `n` of relay `name`, asking the mock for `marker`'s reply."""
    kind, _target, route, make_body = RELAYS[split_variant(name)[0]]
    if kind == "floor":
        # The request every relay sends the mock (see peers.py), so the replies are as long.
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from peers import Body, _request

        body: dict[str, Any] = _request(Body(message=marker))
    else:
        body = make_body(marker)
    payload = json.dumps(body).encode()
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {CLIENT_TOKENS[n % CLIENTS]}\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + payload


async def one_stream(
    port: int, request: bytes, *, hold: asyncio.Event | None = None, opened: list[int] | None = None
) -> Stream:
    """Send one request and read its streamed answer to the end (or until `hold` is set);
    `opened` counts the streams whose response headers have arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    stream = Stream(time.perf_counter())
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    stream.status = int(head.split(b" ", 2)[1])
    if opened is not None:
        opened.append(1)
    tail = b""
    try:
        while True:
            if hold is not None:
                reading = asyncio.ensure_future(reader.read(1 << 16))
                waiting = asyncio.ensure_future(hold.wait())
                done, _ = await asyncio.wait(
                    {reading, waiting}, return_when=asyncio.FIRST_COMPLETED
                )
                if reading not in done:
                    reading.cancel()
                    break
                waiting.cancel()
                data = reading.result()
            else:
                data = await reader.read(1 << 16)
            if not data:
                break
            now = time.perf_counter()
            if stream.first is None and FIRST_TOKEN in tail + data:
                stream.first = now
            stream.events += blank_lines(tail + data) - blank_lines(tail)
            tail = data[-8:]
            if data.endswith(b"0\r\n\r\n"):
                stream.events -= 1  # the last chunk's "0\r\n\r\n" is no event's end
                stream.ended = now
                break
    finally:
        writer.close()
    stream.ended = stream.ended or time.perf_counter()
    return stream


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Relay:
    """One relay (or the floor) under measurement: its port, its process, its CPU and memory."""

    def __init__(self, name: str, port: int, process: subprocess.Popen[bytes] | None) -> None:
        import psutil

        self.name = name
        self.port = port
        self.process = psutil.Process(process.pid) if process is not None else None
        self.sent = 0

    def _processes(self) -> list[Any]:
        """The relay's process and its workers (a supervisor with two workers counts all three)."""
        if self.process is None:
            return []
        return [self.process, *self.process.children(recursive=True)]

    def cpu(self) -> float:
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[int, float]:
        by_pid = {}
        for process in self._processes():
            times = process.cpu_times()
            by_pid[process.pid] = times.user + times.system
        return by_pid

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self._processes())

    def request(self, marker: str) -> bytes:
        self.sent += 1
        return request_bytes(self.name, marker, self.port, self.sent)


async def first_token_1(relay: Relay, n: int) -> float:
    """Median time to first token, one stream at a time (ms)."""
    times = []
    for _ in range(n):
        stream = await one_stream(relay.port, relay.request(SHORT[0]))
        assert stream.first is not None, f"{relay.name}: no first token (HTTP {stream.status})"
        times.append((stream.first - stream.started) * 1000)
    return statistics.median(times)


async def throughput_50(relay: Relay, streams: int) -> dict[str, float]:
    """Tokens per second over `streams` concurrent long replies; relay CPU per token (us)."""
    before = relay.cpu_by_process()
    started = time.perf_counter()
    done = await asyncio.gather(
        *(one_stream(relay.port, relay.request(LONG[0])) for _ in range(streams))
    )
    wall = time.perf_counter() - started
    tokens = sum(s.events for s in done)
    after = relay.cpu_by_process()
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    cpu = sum(used.values())
    statuses = sorted({s.status for s in done})
    assert tokens, f"{relay.name}: no events from {streams} long streams (HTTP {statuses})"
    figures = {
        "tokens_per_s": tokens / wall,
        "cpu_us_per_token": cpu / tokens * 1e6 if relay.process else 0.0,
    }
    if len(used) > 2:  # a supervisor and its workers: how evenly the work was shared
        figures["busiest_worker_share"] = max(used.values()) / cpu
    return figures


async def cpu_per_request(relay: Relay, requests: int) -> float:
    """The relay's CPU time per short request (ms), 10 at a time."""
    before = relay.cpu()
    for start in range(0, requests, 10):
        await asyncio.gather(
            *(
                one_stream(relay.port, relay.request(SHORT[0]))
                for _ in range(min(10, requests - start))
            )
        )
    return (relay.cpu() - before) / requests * 1000


async def paced(relay: Relay, streams: int) -> dict[str, float]:
    """`streams` paced replies started together: p50/p99 first token and total (ms)."""
    done = await asyncio.gather(
        *(one_stream(relay.port, relay.request(PACED[0])) for _ in range(streams))
    )
    firsts = [((s.first or s.ended or s.started) - s.started) * 1000 for s in done]
    totals = [((s.ended or s.started) - s.started) * 1000 for s in done]
    return {
        "first_p50_ms": percentile(firsts, 0.5),
        "first_p99_ms": percentile(firsts, 0.99),
        "total_p50_ms": percentile(totals, 0.5),
        "total_p99_ms": percentile(totals, 0.99),
    }


async def memory_per_stream(relay: Relay, streams: int) -> float:
    """Resident memory per open stream (KB): `streams` held open before their first token."""
    if relay.process is None:
        return 0.0
    idle = relay.rss()
    release = asyncio.Event()
    opened: list[int] = []
    held = [
        asyncio.ensure_future(
            one_stream(relay.port, relay.request(WAIT[0]), hold=release, opened=opened)
        )
        for _ in range(streams)
    ]
    # Every stream answered (so open upstream too, waiting for its first token), then a moment
    # for the relay to settle.
    deadline = time.monotonic() + 30
    while len(opened) < streams and time.monotonic() < deadline:  # noqa: ASYNC110 (a poll of a count)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    peak = relay.rss()
    release.set()
    await asyncio.gather(*held, return_exceptions=True)
    return (peak - idle) / streams / 1024


async def measure(relay: Relay, config: dict[str, int]) -> dict[str, float]:
    await first_token_1(relay, 5)  # warm up: connection pools, imports, caches
    # Memory first, in a fresh process: after the loads below, the allocator reuses what they
    # freed, and new streams would seem to cost nothing.
    memory = await memory_per_stream(relay, config["memory_streams"])
    result: dict[str, float] = {"ttft_1_ms": await first_token_1(relay, config["sequential"])}
    result.update(await throughput_50(relay, config["throughput_streams"]))
    result["cpu_ms_per_request"] = await cpu_per_request(relay, config["requests"])
    for level in config["levels"]:
        for key, value in (await paced(relay, level)).items():
            result[f"{key.replace('_ms', '')}_{level}_ms"] = value
    result["memory_kb_per_stream"] = memory
    return result


def run_relay(
    name: str, mock_url: str, config: dict[str, Any], rounds: int
) -> list[dict[str, float]]:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": f"{mock_url}/v1",
        "OPENAI_API_KEY": "bench-key",
        "ANTHROPIC_BASE_URL": mock_url,
        "ANTHROPIC_API_KEY": "bench-key",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("RELAY_CLIENT_TOKENS", None)
    if split_variant(name)[0] in DEPLOYED:
        env["RELAY_CLIENT_TOKENS"] = ",".join(
            f"{token}:bench-{n:03d}" for n, token in enumerate(CLIENT_TOKENS)
        )
    results = []
    for _ in range(rounds):
        if name == "floor":
            relay = Relay(name, int(mock_url.rsplit(":", 1)[1]), None)
            process = None
        else:
            port = free_port()
            process = spawn(
                [
                    "serve-relay",
                    name,
                    "--port",
                    str(port),
                    "--loop",
                    config["loop"],
                    "--http",
                    config["http"],
                ],
                None if name.endswith("+2workers") else 1,
                env,
            )
            wait_listening(port, process)
            relay = Relay(name, port, process)
        try:
            results.append(asyncio.run(measure(relay, config)))
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    return results


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def report(data: dict[str, Any]) -> None:
    relays = data["relays"]
    floor = relays.get("floor", {}).get("median", {})
    peers = [relays[p]["median"] for p in PEERS if p in relays]
    best = {
        "tokens_per_s": max((p["tokens_per_s"] for p in peers), default=None),
        "cpu_us_per_token": min((p["cpu_us_per_token"] for p in peers), default=None),
    }
    print(
        f"\n{'relay':18} {'ttft+ms':>8} {'tok/s@50':>9} {'us/token':>9} {'ms/req':>7} "
        f"{'p99 first@100':>13} {'KB/stream':>9}  vs best peer (tok/s, us/token)"
    )
    for name, entry in relays.items():
        m = entry["median"]
        overhead = m["ttft_1_ms"] - floor.get("ttft_1_ms", 0.0)
        ratio = ""
        if best["tokens_per_s"] and name != "floor":
            ratio = (
                f"{m['tokens_per_s'] / best['tokens_per_s']:.2f}x, "
                f"{m['cpu_us_per_token'] / best['cpu_us_per_token']:.2f}x"
            )
        print(
            f"{name:18} {overhead:8.2f} {m['tokens_per_s']:9,.0f} {m['cpu_us_per_token']:9.0f} "
            f"{m['cpu_ms_per_request']:7.2f} {m.get('first_p99_100_ms', 0):13,.0f} "
            f"{m['memory_kb_per_stream']:9.1f}  {ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench_relays.py")
    sub = parser.add_subparsers(dest="mode")
    mock_parser = sub.add_parser("serve-mock")
    mock_parser.add_argument("--port", type=int, required=True)
    relay_parser = sub.add_parser("serve-relay")
    relay_parser.add_argument("name")
    relay_parser.add_argument("--port", type=int, required=True)
    relay_parser.add_argument("--loop", default="auto")
    relay_parser.add_argument("--http", default="auto")
    run_parser = sub.add_parser("run")
    for p in (parser, run_parser):
        p.add_argument("--relays", default=",".join(RELAYS))
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--quick", action="store_true", help="a smoke run: tiny loads, one round")
        p.add_argument("--loop", default="auto", help="uvicorn's --loop for the relays")
        p.add_argument("--http", default="auto", help="uvicorn's --http for the relays")
        p.add_argument("--out", type=Path, default=OUT)
        p.add_argument(
            "--merge", action="store_true", help="update these relays in --out, keep the others"
        )
    args = parser.parse_args()
    if args.mode == "serve-mock":
        serve_mock(args.port)
        return
    if args.mode == "serve-relay":
        serve_relay(args.name, args.port, args.loop, args.http)
        return
    names = [n for n in args.relays.split(",") if n]
    for name in names:
        split_variant(name)  # an unknown name stops the run before anything is measured
    if "floor" not in names:
        names.insert(0, "floor")
    config: dict[str, Any] = (
        {
            "sequential": 5,
            "throughput_streams": 5,
            "requests": 10,
            "levels": [10],
            "memory_streams": 20,
        }
        if args.quick
        else {
            "sequential": 60,
            "throughput_streams": 50,
            "requests": 100,
            "levels": [10, 100, 500],
            "memory_streams": 500,
        }
    )
    config.update(loop=args.loop, http=args.http)
    stack = server_stack(args.loop, args.http)
    if stack != {"loop": "uvloop", "http": "httptools"}:
        print(
            f"relays run on {stack['loop']} and {stack['http']}; the stored figures were measured "
            "on uvloop and httptools (pip install -r benchmarks/requirements.txt)",
            flush=True,
        )
    rounds = 1 if args.quick else args.rounds
    mock_port = free_port()
    mock = spawn(["serve-mock", "--port", str(mock_port)], 0, dict(os.environ))
    try:
        wait_listening(mock_port, mock)
        mock_url = f"http://127.0.0.1:{mock_port}"
        data: dict[str, Any] = {
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "pinned": shutil.which("taskset") is not None,
                "server_stack": stack,
            },
            "config": {**config, "rounds": rounds},
            "relays": {},
        }
        for name in names:
            print(f"measuring {name} ...", flush=True)
            rounds_data = run_relay(name, mock_url, config, rounds)
            data["relays"][name] = {"median": medians(rounds_data), "rounds": rounds_data}
    finally:
        mock.terminate()
        mock.wait(10)
    if args.merge and args.out.exists():
        # A re-measured relay joins the stored run (same machine): the others are kept.
        stored = json.loads(args.out.read_text())
        stored["relays"].update({k: v for k, v in data["relays"].items() if k != "floor"})
        stored.setdefault("updated", []).append(
            {"measured": data["measured"], "relays": [n for n in names if n != "floor"]}
        )
        data = stored
    report(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(
        f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )


if __name__ == "__main__":
    main()
