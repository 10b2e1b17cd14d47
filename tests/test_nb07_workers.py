"""Two worker processes behind a real nginx (round robin, no sticky sessions) on a real Redis:
reconnects that land on the other worker resume exactly (the seeded 200-point property), a
stop reaches the worker that generates, budgets hold across workers, and a worker killed
mid-reply leaves its readers with one terminal error, never a hang."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lessons.mock_providers import MockProviders
from lessons.relay_core import read_event
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.nginx import nginx_available
from lessons.toolkit.providers import MOCK_ANTHROPIC_KEY, MOCK_OPENAI_KEY
from lessons.toolkit.pytest_fixtures import require_or_skip
from lessons.toolkit.redis_server import INSTALL_HINT, redis_available, run_redis
from lessons.toolkit.service_cluster import ServiceCluster, run_cluster
from lessons.toolkit.sse_parser import SSEDecoder, SSEEvent

pytestmark = pytest.mark.nginx
# Set to 1 to refresh the notebook's stored screenshot (a test run otherwise leaves the tree alone).
STORE_ENV = "WORKBOOK_STORE_MEASUREMENTS"

CLIENTS = [f"client-{n:02d}" for n in range(40)]
TOKENS = {name: f"{name}-token-0123456789" for name in CLIENTS}
LEASE_S = 1.0
ENV = {
    "RELAY_CLIENT_TOKENS": ",".join(f"{token}:{name}" for name, token in TOKENS.items()),
    "CHAT_SERVICE_LEASE_S": str(LEASE_S),
    "CHAT_SERVICE_LIVENESS_CHECK_S": "0.2",
    "CHAT_SERVICE_ABANDON_AFTER_S": "3",
    "CHAT_SERVICE_RETAIN_S": "60",
}
LONG = {"messages": [{"role": "user", "content": "Explain streaming in one paragraph."}]}
MOCK_REPLY_TOKENS = 93  # the mock's reply to LONG


def auth(client: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[client]}"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[ServiceCluster]:
    require_or_skip(redis_available(), f"redis-server is not installed ({INSTALL_HINT})")
    require_or_skip(nginx_available(), "nginx is not installed (apt-get install nginx-light)")
    mock = MockProviders(ttft_ms=0, token_interval_ms=5)
    with (
        BackgroundServer(mock.app) as mock_server,
        run_redis() as redis,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("OPENAI_BASE_URL", f"{mock_server.url}/v1")
        env.setenv("ANTHROPIC_BASE_URL", mock_server.url)
        env.setenv("OPENAI_API_KEY", MOCK_OPENAI_KEY)
        env.setenv("ANTHROPIC_API_KEY", MOCK_ANTHROPIC_KEY)
        for name in ("NO_PROXY", "no_proxy"):
            env.setenv(name, "127.0.0.1,localhost")
        with run_cluster(redis.url, workers=2, env=ENV) as started:
            started.extra["mock"] = mock
            yield started


@pytest.fixture
def mock(cluster: ServiceCluster) -> Any:
    """The module's mock, reset; and both workers running (a test may have killed one)."""
    cluster.revive()
    mock = cluster.extra["mock"]
    mock.reset()
    return mock


@dataclass
class Reader:
    """One client of one generation: it reads, drops the connection, and reconnects."""

    client: str
    events: list[SSEEvent] = field(default_factory=list)
    served_by: list[str] = field(default_factory=list)
    generation_id: str = ""

    @property
    def last_id(self) -> str | None:
        return self.events[-1].id if self.events else None

    @property
    def finished(self) -> bool:
        return (
            bool(self.events) and read_event(self.events[-1].event, self.events[-1].data).terminal
        )

    def text(self) -> str:
        return "".join(read_event(e.event, e.data).text for e in self.events)

    async def connect(self, http: httpx.AsyncClient, url: str, *, cut_after: int | None) -> None:
        """One connection: POST (the first) or GET with Last-Event-ID; read until `cut_after`
        events have come, then drop it, whatever half event may be in flight."""
        if not self.generation_id:
            request = http.build_request(
                "POST", f"{url}/chat/generations", json=LONG, headers=auth(self.client)
            )
        else:
            headers = {**auth(self.client)}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            request = http.build_request(
                "GET", f"{url}/chat/generations/{self.generation_id}/stream", headers=headers
            )
        response = await http.send(request, stream=True)
        try:
            if response.status_code == 204:
                return
            assert response.status_code == 200, (response.status_code, await response.aread())
            self.generation_id = self.generation_id or response.headers["x-generation-id"]
            self.served_by.append(response.headers["x-served-by"])
            decoder = SSEDecoder()
            got = 0
            async for chunk in response.aiter_raw():
                for event in decoder.feed(chunk):
                    assert isinstance(event, SSEEvent)
                    self.events.append(event)
                    got += 1
                    if cut_after is not None and got >= cut_after:
                        return  # the connection drops here; the decoder's tail is lost
        finally:
            await response.aclose()


def test_200_random_disconnects_across_workers_lose_and_repeat_nothing(
    cluster: ServiceCluster, mock: Any
) -> None:
    """Seeded: 20 generations, 10 disconnects each at random points, every reconnect through
    nginx's round robin. Each reader's events equal the generation's stored events exactly."""
    rng = random.Random(20261207)
    generations, cuts_each = 20, 10
    plans = [sorted(rng.sample(range(1, MOCK_REPLY_TOKENS), cuts_each)) for _ in range(generations)]

    async def one(client: str, plan: list[int], http: httpx.AsyncClient) -> Reader:
        reader = Reader(client)
        seen = 0
        for cut in plan:
            await reader.connect(http, cluster.url, cut_after=max(1, cut - seen))
            seen = len(reader.events)
        while not reader.finished:
            await reader.connect(http, cluster.url, cut_after=None)
        return reader

    async def scenario() -> tuple[list[Reader], list[list[SSEEvent]]]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=20, limits=limits) as http:
            readers = await asyncio.gather(
                *(one(CLIENTS[n], plan, http) for n, plan in enumerate(plans))
            )
            complete = []
            for reader in readers:  # the whole generation, read once from the start
                whole = Reader(reader.client, generation_id=reader.generation_id)
                await whole.connect(http, cluster.url, cut_after=None)
                complete.append(whole.events)
        return list(readers), complete

    readers, complete = asyncio.run(scenario())
    texts = {reader.text() for reader in readers}
    assert len(texts) == 1 and len(texts.pop()) > 400, "every reader has the same, whole reply"
    for reader, whole in zip(readers, complete, strict=True):
        assert [(e.id, e.event, e.data) for e in reader.events] == [
            (e.id, e.event, e.data) for e in whole
        ], f"{reader.client}: events lost or repeated"
        assert whole[-1].event == "done"
        assert len(set(reader.served_by)) == 2, "its reconnects reached both workers"
    assert sum(len(r.served_by) for r in readers) >= generations * (cuts_each + 1)
    assert len(mock.requests) == generations, "one provider call per generation"


class Feed:
    """The events of one streamed response, read a few at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.iter_raw()
        self._decoder = SSEDecoder()

    def read(self, until: int | None = None) -> list[SSEEvent]:
        """The next `until` events (all the rest when None). A connection cut by a worker that
        died ends the list early, as it would a browser's."""
        events: list[SSEEvent] = []
        try:
            for chunk in self._chunks:
                events += [e for e in self._decoder.feed(chunk) if isinstance(e, SSEEvent)]
                if until is not None and len(events) >= until:
                    break
        except httpx.HTTPError:
            pass
        return events


def _get_on_another_worker(
    http: httpx.Client, cluster: ServiceCluster, path: str, not_on: str, headers: dict[str, str]
) -> httpx.Response:
    """A GET through nginx that lands on a worker other than `not_on` (round robin: the first or
    the second try)."""
    for _ in range(4):
        request = http.build_request("GET", cluster.url + path, headers=headers)
        response = http.send(request, stream=True)
        if response.headers.get("x-served-by") != not_on:
            return response
        response.close()
    raise AssertionError("nginx sent every GET to the same worker")


def test_a_stop_sent_to_another_worker_stops_the_generation(cluster: ServiceCluster, mock) -> None:
    mock.set_timing(token_interval_ms=20)
    with httpx.Client(timeout=10) as http:
        post = http.send(
            http.build_request(
                "POST", f"{cluster.url}/chat/generations", json=LONG, headers=auth("client-30")
            ),
            stream=True,
        )
        generating = post.headers["x-served-by"]
        feed = Feed(post)
        first = feed.read(until=3)
        generation_id = post.headers["x-generation-id"]
        for _ in range(4):
            stop = http.delete(
                f"{cluster.url}/chat/generations/{generation_id}", headers=auth("client-30")
            )
            if stop.headers["x-served-by"] != generating:
                break
        assert stop.status_code == 204 and stop.headers["x-served-by"] != generating
        rest = feed.read()
        post.close()
    last = read_event(rest[-1].event, rest[-1].data)
    assert last.kind == "error" and last.code == "stopped", "the POST's reader learns it stopped"
    observed = mock.wait_until_finished(mock.requests[0], timeout=5)
    assert observed.outcome == "client_disconnected", "the provider stopped generating"
    assert len(first) + len(rest) < MOCK_REPLY_TOKENS


def test_budgets_hold_across_workers(cluster: ServiceCluster, mock) -> None:
    """The default budget is 4 open streams per client: two workers together admit 4, not 8."""
    mock.set_timing(ttft_ms=0, token_interval_ms=50)
    with httpx.Client(timeout=10) as http:
        held = []
        for _ in range(4):
            response = http.send(
                http.build_request(
                    "POST", f"{cluster.url}/chat/generations", json=LONG, headers=auth("client-31")
                ),
                stream=True,
            )
            assert response.status_code == 200
            held.append(response)
        over = http.post(f"{cluster.url}/chat/generations", json=LONG, headers=auth("client-31"))
        workers = {response.headers["x-served-by"] for response in held}
        for response in held:
            response.close()
        for generation in held:
            http.delete(
                f"{cluster.url}/chat/generations/{generation.headers['x-generation-id']}",
                headers=auth("client-31"),
            )
    assert workers == {w.name for w in cluster.workers}, "the streams were spread over both"
    assert over.status_code == 429 and over.json()["error"]["code"] == "too_many_streams"


@pytest.mark.slow  # a worker restarted afterwards: seconds (notebook 07 runs it too)
def test_a_worker_killed_mid_reply_leaves_its_readers_an_error_not_a_hang(
    cluster: ServiceCluster, mock
) -> None:
    """SIGKILL the worker that generates. A reader on the other worker gets the events so far,
    then one terminal error soon after the producer's lease runs out; a reader that was on the
    killed worker reconnects (through nginx, to the survivor) and gets the same."""
    mock.set_timing(token_interval_ms=30)
    with httpx.Client(timeout=15) as http:
        post = http.send(
            http.build_request(
                "POST", f"{cluster.url}/chat/generations", json=LONG, headers=auth("client-32")
            ),
            stream=True,
        )
        generating = post.headers["x-served-by"]
        generation_id = post.headers["x-generation-id"]
        headers = auth("client-32")
        path = f"/chat/generations/{generation_id}/stream"
        on_post = Feed(post)
        before = on_post.read(until=5)
        other = Feed(_get_on_another_worker(http, cluster, path, generating, headers))
        seen = other.read(until=8)
        killed_at = time.monotonic()
        cluster.kill(cluster.by_name(generating), signal.SIGKILL)
        seen += other.read()
        error_after_s = time.monotonic() - killed_at
        other.response.close()
        cut = on_post.read()  # its connection is cut: no terminal event
        post.close()
        last_seen = (before + cut)[-1].id
        back = http.get(cluster.url + path, headers={**headers, "Last-Event-ID": last_seen})
    assert not any(read_event(e.event, e.data).terminal for e in before + cut)
    last = read_event(seen[-1].event, seen[-1].data)
    assert last.kind == "error" and last.code == "stream_interrupted", seen[-1].data
    assert sum(read_event(e.event, e.data).terminal for e in seen) == 1
    assert error_after_s < LEASE_S + 2.0, f"the error came {error_after_s:.2f} s after the kill"
    assert back.status_code == 200 and back.headers["x-served-by"] != generating
    resumed = [e for e in SSEDecoder().feed(back.content) if isinstance(e, SSEEvent)]
    tail = read_event(resumed[-1].event, resumed[-1].data)
    assert tail.kind == "error" and tail.code == "stream_interrupted"
    cluster.revive()


@pytest.mark.slow  # as above
def test_sigterm_drains_a_worker_with_one_terminal_event_per_stream(
    cluster: ServiceCluster, mock
) -> None:
    mock.set_timing(token_interval_ms=30)
    with httpx.Client(timeout=15) as http:
        post = http.send(
            http.build_request(
                "POST", f"{cluster.url}/chat/generations", json=LONG, headers=auth("client-33")
            ),
            stream=True,
        )
        draining = cluster.by_name(post.headers["x-served-by"])
        feed = Feed(post)
        feed.read(until=3)
        draining.process.send_signal(signal.SIGTERM)
        rest = feed.read()
        post.close()
        draining.process.wait(timeout=15)
    last = read_event(rest[-1].event, rest[-1].data)
    assert last.kind == "error" and last.code == "server_shutting_down", rest[-1].data
    assert sum(read_event(e.event, e.data).terminal for e in rest) == 1
    logged = [line for line in draining.log_lines() if line.get("event") == "stream_end"]
    assert logged and all("request_id" in line for line in logged), "structured, by request id"
    assert json.dumps(logged[-1])  # one JSON object per line
    cluster.revive()


IMAGES = Path(__file__).resolve().parents[1] / "notebooks" / "images"
RELOAD_SCREENSHOT = IMAGES / "07_page_after_reload.png"
PARAGRAPH = (
    "Streaming sends a response in small pieces as soon as each one is ready, instead of "
    "waiting for the whole answer."
)


@pytest.mark.browser
def test_the_page_shows_the_whole_reply_once_after_a_reload(
    cluster: ServiceCluster, mock, tmp_path: Path
) -> None:
    """A real Chromium: send, reload the page mid-reply, and the page shows the whole reply,
    exactly once, from one provider call, read again through nginx from whichever worker."""
    from lessons.toolkit.browser import chromium_available, chromium_page

    require_or_skip(chromium_available(), "Chromium or playwright is not installed")
    mock.set_timing(token_interval_ms=30)
    with chromium_page() as page:
        page.goto(cluster.url + "/")
        page.fill("#token", TOKENS["client-34"])
        page.click("#send")
        page.wait_for_function("document.getElementById('reply').textContent.length > 80")
        page.reload()
        page.wait_for_function(
            "document.getElementById('status').dataset.state === 'done'", timeout=20_000
        )
        shown = page.inner_text("#reply")
        resumed = page.get_attribute("#status", "data-resumed")
        shot = RELOAD_SCREENSHOT if os.environ.get(STORE_ENV) == "1" else tmp_path / "page.png"
        page.screenshot(path=str(shot))
    assert shown.startswith(PARAGRAPH) and shown.endswith("makes the answer feel fast.")
    assert shown.count(PARAGRAPH) == 1, "nothing repeated"
    assert resumed == "1"
    assert len(mock.requests) == 1, "one provider call: the reload read the same generation"
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow  # starts a supervisor and two more workers of its own
def test_the_documented_command_runs_draining_workers(cluster: ServiceCluster, mock) -> None:
    """`python -m lessons.chat_service --workers 2`: two workers behind one socket, each with
    its own metrics port, each draining its streams on SIGTERM."""
    import contextlib
    import socket
    import subprocess
    import sys
    import threading

    from lessons.toolkit.child_process import free_port

    def free_ports(count: int) -> int:
        """The first of `count` consecutive ports that are free now (worker i binds first + i)."""
        while True:
            first = free_port()
            try:
                with contextlib.ExitStack() as held:
                    for offset in range(1, count):
                        sock = held.enter_context(socket.socket())
                        sock.bind(("127.0.0.1", first + offset))
                return first
            except OSError:
                continue

    metrics = free_ports(2)
    port = free_port()
    while port in (metrics, metrics + 1):
        port = free_port()
    command = [
        sys.executable,
        "-m",
        "lessons.chat_service",
        "--workers",
        "2",
        "--port",
        str(port),
        "--redis-url",
        str(cluster.redis_url),
        "--metrics-port",
        str(metrics),
    ]
    log = cluster.workdir / "supervisor.log"
    with log.open("wb") as out:
        supervisor = subprocess.Popen(
            command,
            env={**os.environ, **ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        names: set[str] = set()
        deadline = time.monotonic() + 40
        while len(names) < 2 and time.monotonic() < deadline:
            try:
                names.add(httpx.get(f"{url}/ready", timeout=2).json()["worker"])
            except (httpx.HTTPError, ValueError):
                time.sleep(0.1)
        assert len(names) == 2, f"one socket, two workers answering: {log.read_text()[-2000:]}"
        for offset in (0, 1):
            assert httpx.get(f"http://127.0.0.1:{metrics + offset}/metrics").status_code == 200
        mock.set_timing(token_interval_ms=30)
        got: dict[str, list[SSEEvent]] = {}

        def long_read() -> None:
            with (
                httpx.Client(timeout=20) as http,
                http.stream(
                    "POST", f"{url}/chat/generations", json=LONG, headers=auth("client-35")
                ) as response,
            ):
                got["events"] = Feed(response).read()

        reader = threading.Thread(target=long_read)
        reader.start()
        deadline = time.monotonic() + 10
        while not mock.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        reader.join(10)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    last = read_event(got["events"][-1].event, got["events"][-1].data)
    assert last.kind == "error" and last.code == "server_shutting_down"
