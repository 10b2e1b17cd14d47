"""Several workers of the chat service behind a real nginx, sharing a real Redis.

Each worker is its own process (`python -m lessons.chat_service --port P`), as on separate
machines; nginx spreads requests over them round robin, with no sticky sessions, so a reconnect
lands on another worker than the request that started the reply. Everything binds 127.0.0.1 on
free ports and lives in a private temporary folder; `run_cluster` stops it all on exit.

nginx's config here differs from `lessons.toolkit.nginx`'s in what many streams need: several
upstream servers, and room for 500 streams (`worker_connections` counts both sides of each
proxied stream, so 256 allows about 128; the open-file limit is raised with them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lessons.toolkit.child_process import accepts_connections, free_port, start_on_free_port, stop
from lessons.toolkit.nginx import nginx_binary

UPSTREAM = "chat_service"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def render_cluster_config(
    workdir: Path,
    *,
    port: int,
    upstreams: list[str],
    worker_connections: int = 4_096,
    open_files: int = 16_384,
    read_timeout: str = "300s",
) -> str:
    """An nginx.conf in front of several `host:port` upstreams, round robin, streaming.

    `worker_connections` counts client and upstream connections alike: a proxied stream takes
    two. `open_files` (`worker_rlimit_nofile`) must cover them, since the usual soft limit of
    1,024 open files would stop nginx long before.
    """
    user = "user root;\n" if os.geteuid() == 0 else ""
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=5s;" for u in upstreams)
    w = workdir
    return f"""{user}daemon off;
worker_processes 1;
worker_rlimit_nofile {open_files};
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    upstream {UPSTREAM} {{
        # Round robin (nginx's default), no ip_hash or sticky cookie: any worker may get any
        # request, which only works because every worker reads generations from Redis.
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://{UPSTREAM};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout {read_timeout};
            # A worker that dies mid-request: a GET (a reader) is retried on the next worker;
            # nginx never retries a POST, which could start a second generation.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


@dataclass
class Worker:
    """One service process."""

    index: int
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    name: str = ""  # the worker's own name (X-Served-By), read from /ready

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_lines(self) -> list[dict[str, object]]:
        """The worker's structured log (one JSON object per line)."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines


@dataclass
class ServiceCluster:
    """Workers, and the nginx in front of them (`url`)."""

    workers: list[Worker]
    url: str
    workdir: Path
    redis_url: str | None
    env: dict[str, str]
    nginx: subprocess.Popen[bytes] | None = None
    config: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def by_name(self, name: str) -> Worker:
        return next(w for w in self.workers if w.name == name)

    def label(self, name: str) -> str:
        """ "worker 1", "worker 2"... for a worker's name: what a notebook prints."""
        return f"worker {self.by_name(name).index + 1}"

    def kill(self, worker: Worker, sig: int = signal.SIGKILL) -> None:
        worker.process.send_signal(sig)
        worker.process.wait(timeout=15)

    def restart(self, worker: Worker, timeout: float = 30.0) -> None:
        """Start a stopped worker again on its own ports (nginx's upstream list stays valid)."""
        if worker.alive:
            return
        new = _spawn(
            worker.index,
            worker.port,
            worker.metrics_port,
            self.workdir,
            self.env,
            redis_url=self.redis_url,
        )
        worker.process = new.process
        _wait_ready(worker, time.monotonic() + timeout)

    def revive(self) -> None:
        """Restart every worker that is not running."""
        for worker in self.workers:
            self.restart(worker)

    def scrape(self) -> dict[str, str]:
        """Every live worker's Prometheus metrics, by worker name."""
        return {w.name: httpx.get(w.metrics_url, timeout=5).text for w in self.workers if w.alive}


def _wait_ready(worker: Worker, deadline: float) -> None:
    while time.monotonic() < deadline:
        if not worker.alive:
            raise RuntimeError(f"worker {worker.index} exited: {_tail(worker.log_path)}")
        try:
            response = httpx.get(f"{worker.url}/ready", timeout=1)
            if response.status_code == 200:
                worker.name = response.json()["worker"]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"worker {worker.index} not ready: {_tail(worker.log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_worker(
    index: int, workdir: Path, env: dict[str, str], *, redis_url: str | None
) -> Worker:
    """Start one service process on free ports (not ready until /ready says so). Without
    `redis_url` it keeps generations in its own memory (one worker only)."""
    return _spawn(index, free_port(), free_port(), workdir, env, redis_url=redis_url)


def _spawn(
    index: int,
    port: int,
    metrics_port: int,
    workdir: Path,
    env: dict[str, str],
    *,
    redis_url: str | None,
) -> Worker:
    log_path = workdir / f"worker-{index}.log"
    command = [sys.executable, "-m", "lessons.chat_service", "--port", str(port)]
    command += ["--metrics-port", str(metrics_port)]
    if redis_url:
        command += ["--redis-url", redis_url]
    env = {k: v for k, v in env.items() if redis_url or k != "CHAT_SERVICE_REDIS_URL"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Worker(index, port, metrics_port, process, log_path)


@contextmanager
def run_cluster(
    redis_url: str | None,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    nginx: bool = True,
    startup_timeout: float = 30.0,
) -> Iterator[ServiceCluster]:
    """`workers` service processes sharing `redis_url`, behind nginx (round robin). With
    `redis_url=None`, one worker keeping generations in its memory (the single-process setup).

    `env` adds to this process's environment (which points the SDKs at the mock providers):
    `RELAY_CLIENT_TOKENS`, `CHAT_SERVICE_LEASE_S`, ... The workers share one grant key, as
    `python -m lessons.chat_service --workers N` makes its workers do.
    """
    workdir = Path(tempfile.mkdtemp(prefix="chat-cluster-"))
    process_env = {**os.environ, **(env or {})}
    process_env.setdefault("RELAY_GRANT_KEY", os.urandom(32).hex())
    process_env["PYTHONUNBUFFERED"] = "1"
    started: list[Worker] = []
    proxy: subprocess.Popen[bytes] | None = None
    try:
        started = [
            start_worker(i, workdir, process_env, redis_url=redis_url) for i in range(workers)
        ]
        deadline = time.monotonic() + startup_timeout
        for worker in started:
            _wait_ready(worker, deadline)
        cluster = ServiceCluster(started, started[0].url, workdir, redis_url, process_env)
        if nginx:
            proxy, url, config = _start_nginx(workdir, [f"127.0.0.1:{w.port}" for w in started])
            cluster.nginx, cluster.url, cluster.config = proxy, url, config
        yield cluster
    finally:
        if proxy is not None:
            stop(proxy, timeout=10)
            if proxy.stderr is not None:
                proxy.stderr.close()
        for worker in started:
            stop(worker.process, timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _start_nginx(workdir: Path, upstreams: list[str]) -> tuple[subprocess.Popen[bytes], str, str]:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian/Ubuntu: apt-get install nginx-light)")
    conf = workdir / "nginx.conf"
    program = binary

    def command_for(port: int) -> list[str]:
        conf.write_text(render_cluster_config(workdir, port=port, upstreams=upstreams))
        return [program, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]

    process, port = start_on_free_port(
        "nginx",
        command_for,
        ready=accepts_connections,
        log=workdir / "error.log",
        workdir=workdir,
        startup_timeout=10,
    )
    return process, f"http://127.0.0.1:{port}", conf.read_text()


__all__ = [
    "UPSTREAM",
    "ServiceCluster",
    "Worker",
    "render_cluster_config",
    "run_cluster",
    "start_worker",
]
