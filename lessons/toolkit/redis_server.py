"""Run a real redis-server as a child process: free port, private directory, no persistence.

Like `lessons.toolkit.nginx`, nothing in /etc or /var is touched: the server runs in the
foreground as our child, with its working directory, log and (disabled) snapshots in a private
temporary folder, bound to 127.0.0.1 only. It works as root (CI) and as an ordinary user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lessons.toolkit.child_process import start_on_free_port, stop

# Debian installs the binary in /usr/bin; Homebrew in /opt/homebrew/bin or /usr/local/bin.
_CANDIDATES = (
    "/usr/bin/redis-server",
    "/usr/local/bin/redis-server",
    "/opt/homebrew/bin/redis-server",
)

INSTALL_HINT = "Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis"


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


def redis_available() -> bool:
    """True when a redis-server binary exists and runs (`redis-server --version`)."""
    binary = redis_binary()
    if binary is None:
        return False
    try:
        return (
            subprocess.run([binary, "--version"], capture_output=True, timeout=10).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def redis_version() -> str | None:
    """The server's version ("7.0.15"), or None when it is not installed."""
    binary = redis_binary()
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return None


def render_config(workdir: Path, *, port: int, maxclients: int = 4_000) -> str:
    """A redis.conf whose every file lives under `workdir`; memory only, loopback only."""
    return f"""port {port}
bind 127.0.0.1
protected-mode yes
daemonize no
dir {workdir}
logfile {workdir}/redis.log
# A cache of generations that expire: nothing to persist, nothing to write to disk.
save ""
appendonly no
maxclients {maxclients}
"""


@dataclass
class RedisServer:
    """A running redis-server: `.url` is what clients connect to."""

    url: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self):  # -> redis.Redis (imported lazily: the toolkit must import without redis)
        """A synchronous redis-py client, for looking at what the server holds."""
        import redis

        return redis.Redis.from_url(self.url)

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def run_redis(*, startup_timeout: float = 10.0, maxclients: int = 4_000) -> Iterator[RedisServer]:
    """Start redis-server on a free loopback port; stop it and delete its folder on exit."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError(f"redis-server is not installed ({INSTALL_HINT})")
    workdir = Path(tempfile.mkdtemp(prefix="redis-lesson-"))
    conf = workdir / "redis.conf"

    program = binary

    def command_for(port: int) -> list[str]:
        conf.write_text(render_config(workdir, port=port, maxclients=maxclients))
        return [program, str(conf)]

    try:
        # Stopped with SIGTERM: redis-server shuts down at once (`save ""`: it writes nothing).
        process, port = start_on_free_port(
            "redis-server",
            command_for,
            ready=_answers_ping,
            log=workdir / "redis.log",
            workdir=workdir,
            startup_timeout=startup_timeout,
        )
        try:
            yield RedisServer(f"redis://127.0.0.1:{port}/0", port, workdir, process)
        finally:
            stop(process)
            if process.stderr is not None:
                process.stderr.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = [
    "INSTALL_HINT",
    "RedisServer",
    "redis_available",
    "redis_binary",
    "redis_version",
    "render_config",
    "run_redis",
]
