"""Run a real redis-server as a child process: free port, private directory, no persistence.

Like `lessons.toolkit.nginx`, nothing in /etc or /var is touched: the server runs in the
foreground as our child, with its working directory, log and (disabled) snapshots in a private
temporary folder, bound to 127.0.0.1 only. It works as root (CI) and as an ordinary user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGTERM: redis-server shuts down at once (with `save ""` it writes nothing).
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def run_redis(*, startup_timeout: float = 10.0, maxclients: int = 4_000) -> Iterator[RedisServer]:
    """Start redis-server on a free loopback port; stop it and delete its folder on exit."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError(f"redis-server is not installed ({INSTALL_HINT})")
    workdir = Path(tempfile.mkdtemp(prefix="redis-lesson-"))
    try:
        last_error = ""
        for _attempt in range(5):
            # The free port can be taken between our probe and redis' bind: retry on a new one.
            port = _free_port()
            conf = workdir / "redis.conf"
            conf.write_text(render_config(workdir, port=port, maxclients=maxclients))
            process = subprocess.Popen(
                [binary, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if _wait_until_ready(process, port, startup_timeout):
                server = RedisServer(f"redis://127.0.0.1:{port}/0", port, workdir, process)
                try:
                    yield server
                finally:
                    _stop(process)
                    if process.stderr is not None:
                        process.stderr.close()
                return
            _stop(process)
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            if process.stderr is not None:
                process.stderr.close()
            log = (
                (workdir / "redis.log").read_text(errors="replace")
                if (workdir / "redis.log").exists()
                else ""
            )
            last_error = (stderr + log).strip()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(
            f"redis-server did not start: {last_error.replace(str(workdir), '<tmp>')}"
        )
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
