"""Real programs the lessons start (nginx, redis-server, the service's workers) as child
processes on free loopback ports: found free, started, waited for, stopped.

A port found free can be taken by someone else before the program binds it: `start_on_free_port`
tries again on a new port when the program says "Address already in use", and reports any other
failure with the program's own words (its stderr and its log), this machine's paths masked.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts_connections(port: int) -> bool:
    """True when something listens on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float
) -> bool:
    """Poll `ready()` until it is true, the process exits (False) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.02)
    return False


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 5) -> None:
    """Ask the process to end with `sig`; kill it when it has not within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def start_on_free_port(
    name: str,
    command_for: Callable[[int], list[str]],
    *,
    ready: Callable[[int], bool],
    log: Path,
    workdir: Path,
    startup_timeout: float,
    attempts: int = 5,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `command_for(port)` on a free port until `ready(port)`; return the process and port.

    The caller stops the process (`stop`) and closes its stderr. `log` is the program's own log
    file, read with its stderr when it fails to start; `workdir` is masked in that message."""
    last_error = ""
    for _attempt in range(attempts):
        port = free_port()
        process = subprocess.Popen(
            command_for(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if wait_until_ready(process, lambda port=port: ready(port), startup_timeout):
            return process, port
        stop(process)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr is not None:
            process.stderr.close()
        written = log.read_text(errors="replace") if log.exists() else ""
        last_error = (stderr + written).strip()
        if "Address already in use" not in last_error:
            break
    raise RuntimeError(f"{name} did not start: {last_error.replace(str(workdir), '<tmp>')}")
