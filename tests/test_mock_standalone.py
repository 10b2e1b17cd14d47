"""`python -m lessons.mock_providers` serves the mock in a terminal, for `uvicorn app:app` work."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lessons.mock_providers.__main__ import environment_lines

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_standalone_command_serves_both_providers() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "lessons.mock_providers",
        "--port",
        str(port),
        "--ttft-ms",
        "0",
        "--token-interval-ms",
        "0",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"{base}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "Say hello."}]},
                )
                break
            except httpx.ConnectError:
                assert process.poll() is None, "the command exited early"
                assert time.monotonic() < deadline, "the mock did not start"
                time.sleep(0.05)
        assert response.json()["choices"][0]["message"]["content"] == (
            "Hello! How can I help you today?"
        )
        anthropic = httpx.post(
            f"{base}/v1/messages",
            json={"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        assert anthropic.json()["type"] == "message"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    for line in environment_lines(base):
        assert line in output
    assert f"export OPENAI_BASE_URL={base}/v1" in output
