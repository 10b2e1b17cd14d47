"""Run a real nginx in front of a lesson app: free port, private prefix and temp dir.

`run_nginx(upstream, locations)` starts nginx as a child process with everything it writes (pid
file, logs, temp dirs and, with `tls=True`, a self-signed certificate made for the run) in a
private temporary directory, removed when the block ends: no root, nothing in /etc or /var, no
certificate ever committed. `http2=True` serves HTTP/2 (browsers speak it over TLS only).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from lessons.relay_core.contract import WireEvent, read_event
from lessons.toolkit.child_process import (
    accepts_connections,
    free_port,
    start_on_free_port,
    stop,
)
from lessons.toolkit.sse_parser import SSEComment, SSEDecoder
from lessons.toolkit.timing import Arrivals

# Debian installs the binary in /usr/sbin, which an ordinary user's PATH often lacks.
_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

UPSTREAM_NAME = "relay"


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


def nginx_available() -> bool:
    """True when an nginx binary exists and runs (`nginx -v`)."""
    return nginx_version() is not None


def nginx_version() -> tuple[int, ...] | None:
    """The installed nginx's version, e.g. (1, 22, 1), or None when there is none that runs."""
    binary = nginx_binary()
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"nginx/(\d+(?:\.\d+)*)", result.stderr + result.stdout)
    if result.returncode != 0 or match is None:
        return None
    return tuple(int(part) for part in match[1].split("."))


def openssl_available() -> bool:
    """True when the `openssl` command runs (it makes the certificate of `run_nginx(tls=True)`)."""
    binary = shutil.which("openssl")
    if binary is None:
        return False
    try:
        return subprocess.run([binary, "version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate and key for `host`, valid for one day, made in `directory` for one run.

    No browser trusts it: a test browser is told to accept it (`ignore_https_errors`), which is
    acceptable for a page on loopback that the test itself serves, and for nothing else.
    """
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is not installed (Debian/Ubuntu: apt-get install openssl)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    # An elliptic-curve key: made in milliseconds, where RSA takes a good part of a second.
    command = [binary, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"]
    command += ["-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def location_block(
    *,
    path: str = "/",
    buffering: bool = True,
    http_version: str = "1.0",
    read_timeout: str = "60s",
    gzip: bool = False,
    extra: str = "",
) -> str:
    """A `location` block proxying to the upstream named `relay`; arguments map to directives.

    The defaults are nginx's own defaults (buffering on, HTTP/1.0 to the upstream, 60 s read
    timeout, gzip off), written out so that each measurement changes one thing.
    """
    lines = [
        f"location {path} {{",
        f"    proxy_pass http://{UPSTREAM_NAME};",
        f"    proxy_http_version {http_version};",
        f"    proxy_buffering {'on' if buffering else 'off'};",
        f"    proxy_read_timeout {read_timeout};",
    ]
    if http_version == "1.1":
        # Without this nginx sends `Connection: close` upstream and keep-alive never happens.
        lines.append('    proxy_set_header Connection "";')
    if gzip:
        lines += ["    gzip on;", "    gzip_types text/event-stream;", "    gzip_min_length 0;"]
    lines += [f"    {line.strip()}" for line in extra.splitlines() if line.strip()]
    lines.append("}")
    return "\n".join(lines)


def _listen(port: int, *, tls: tuple[Path, Path] | None, http2: bool) -> str:
    """The `listen` lines: plain HTTP/1.1, or TLS with its certificate, with or without HTTP/2."""
    if http2 and tls is None:
        raise ValueError("browsers speak HTTP/2 over TLS only: pass tls with http2")
    if tls is None:
        return f"listen 127.0.0.1:{port};"
    cert, key = tls
    # nginx 1.25.1 replaced the `http2` parameter of `listen` with an `http2 on;` directive.
    modern = (nginx_version() or (0,)) >= (1, 25, 1)
    if http2 and modern:
        head = f"listen 127.0.0.1:{port} ssl;\nhttp2 on;"
    else:
        head = f"listen 127.0.0.1:{port} ssl{' http2' if http2 else ''};"
    return f"{head}\nssl_certificate {cert};\nssl_certificate_key {key};"


def render_config(
    workdir: Path,
    *,
    port: int,
    upstream: str,
    locations: str,
    tls: tuple[Path, Path] | None = None,
    http2: bool = False,
) -> str:
    """A complete nginx.conf whose every path (pid, logs, temp dirs) lives under `workdir`.

    `tls` is a (certificate, key) pair to serve HTTPS with; `http2` adds HTTP/2 on top of it.
    """
    parts = urlsplit(upstream)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError("upstream must look like http://127.0.0.1:PORT")
    listen = _listen(port, tls=tls, http2=http2)
    # As root, nginx's workers switch to `nobody`, who cannot use our private temp dir; as an
    # ordinary user the `user` directive is ignored with a warning, so it is only set for root.
    user = "user root;\n" if os.geteuid() == 0 else ""
    w = workdir
    return f"""{user}daemon off;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    upstream {UPSTREAM_NAME} {{
        server {parts.hostname}:{parts.port};
        keepalive 8;
    }}
    server {{
{_indent(listen, 8)}
{_indent(locations, 8)}
    }}
}}
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join((" " * spaces + line) if line.strip() else line for line in text.splitlines())


@dataclass
class NginxServer:
    """A running nginx: `.url` is where clients connect; `.config` is the file it runs."""

    url: str
    config: str
    workdir: Path
    process: subprocess.Popen[bytes]
    http2: bool = False

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def check_config(locations: str) -> str | None:
    """Run `nginx -t` on a config holding `locations`; None when valid, else nginx's message."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    with tempfile.TemporaryDirectory(prefix="nginx-check-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "nginx.conf"
        conf.write_text(
            render_config(
                workdir, port=free_port(), upstream="http://127.0.0.1:9", locations=locations
            )
        )
        result = subprocess.run(
            [
                binary,
                "-t",
                "-q",
                "-p",
                str(workdir),
                "-e",
                str(workdir / "error.log"),
                "-c",
                str(conf),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if result.returncode == 0:
            return None
        # Strip this machine's temp path from the message: a learner sees only the directive.
        return (result.stderr.strip() or "nginx -t failed").replace(str(workdir), "<tmp>")


@contextmanager
def run_nginx(
    upstream: str,
    locations: str | None = None,
    *,
    tls: bool = False,
    http2: bool = False,
    startup_timeout: float = 10.0,
) -> Iterator[NginxServer]:
    """Start nginx in front of `upstream` (a base URL) with `locations`; stop it on exit.

    nginx runs in the foreground (`daemon off`) as our child process, with its prefix, pid file,
    logs and every temp path in a private temporary directory, so it needs no root and touches
    nothing in /etc or /var. Works as root (CI) and as an ordinary user. With `tls=True` it
    serves HTTPS with a self-signed certificate made in that directory for this run (`https://`
    in `.url`); `http2=True` (which needs `tls`) serves HTTP/2 as well.
    """
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian/Ubuntu: apt-get install nginx-light)")
    if http2 and not tls:
        raise ValueError("browsers speak HTTP/2 over TLS only: pass tls=True with http2=True")
    locations = location_block() if locations is None else locations
    workdir = Path(tempfile.mkdtemp(prefix="nginx-lesson-"))
    try:
        certificate = self_signed_certificate(workdir) if tls else None
        scheme = "https" if tls else "http"
        conf = workdir / "nginx.conf"
        program = binary

        def command_for(port: int) -> list[str]:
            config = render_config(
                workdir,
                port=port,
                upstream=upstream,
                locations=locations,
                tls=certificate,
                http2=http2,
            )
            conf.write_text(config)
            return [program, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]

        process, port = start_on_free_port(
            "nginx",
            command_for,
            ready=accepts_connections,
            log=workdir / "error.log",
            workdir=workdir,
            startup_timeout=startup_timeout,
        )
        try:
            # SIGTERM is nginx's fast shutdown: open streams are closed, not waited for (SIGQUIT
            # would wait for every long-lived stream to finish).
            url = f"{scheme}://127.0.0.1:{port}"
            yield NginxServer(url, conf.read_text(), workdir, process, http2=http2)
        finally:
            stop(process)
            if process.stderr is not None:
                process.stderr.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class TimedStream:
    """One streamed reply as a client saw it: when each token came, and how the stream ended."""

    arrivals: Arrivals
    token_times: list[float]  # time.monotonic() of each token, comparable with the mock's times
    events: list[dict[str, Any]]
    headers: dict[str, str]
    status: int
    comments: int = 0
    transport_error: str | None = None  # e.g. "RemoteProtocolError" when a proxy cut the stream
    started_at: float = 0.0  # time.monotonic() just before the request was sent
    # (milliseconds since the request was sent, bytes) of each piece of the body as it arrived.
    chunks: list[tuple[float, int]] = field(default_factory=list)
    wire_bytes: int = 0  # the body's bytes as sent, before any Content-Encoding was undone

    @property
    def text(self) -> str:
        return self.arrivals.text

    @property
    def terminal(self) -> WireEvent | None:
        """The last event, if it is a terminal one (done or error) of the wire contract."""
        last = self.wire[-1] if self.wire else None
        return last if last is not None and last.terminal else None

    @property
    def wire(self) -> list[WireEvent]:
        return [read_event(None, json.dumps(data)) for data in self.events]

    def since_sent_ms(self, monotonic: float) -> float:
        """A time.monotonic() moment (the mock's, say) in milliseconds since the request."""
        return (monotonic - self.started_at) * 1000


def timed_stream(
    url: str,
    body: dict[str, Any],
    *,
    label: str,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    verify: bool = True,
) -> TimedStream:
    """POST `body` and read the `/chat/stream`-shaped reply, timing every token on arrival."""
    arrivals = Arrivals(label)
    token_times: list[float] = []
    events: list[dict[str, Any]] = []
    chunks: list[tuple[float, int]] = []
    decoder = SSEDecoder(include_comments=True)
    comments = 0
    error: str | None = None
    started_at = time.monotonic()
    with (
        httpx.Client(timeout=timeout, verify=verify) as client,
        client.stream("POST", url, json=body, headers=headers or {}) as response,
    ):
        try:
            for chunk in response.iter_bytes():
                now = time.monotonic()
                chunks.append(((now - started_at) * 1000, len(chunk)))
                for item in decoder.feed(chunk):
                    if isinstance(item, SSEComment):
                        comments += 1
                        continue
                    data = json.loads(item.data)
                    events.append(data)
                    event = read_event(item.event, item.data)
                    if event.kind == "token" and event.text:
                        arrivals.mark(event.text)
                        token_times.append(now)
        except httpx.TransportError as exc:
            error = type(exc).__name__
        arrivals.finish()
        return TimedStream(
            arrivals,
            token_times,
            events,
            dict(response.headers),
            response.status_code,
            comments,
            error,
            started_at,
            chunks,
            response.num_bytes_downloaded,
        )


__all__ = [
    "UPSTREAM_NAME",
    "NginxServer",
    "TimedStream",
    "check_config",
    "location_block",
    "nginx_available",
    "nginx_binary",
    "nginx_version",
    "openssl_available",
    "render_config",
    "run_nginx",
    "self_signed_certificate",
    "timed_stream",
]
