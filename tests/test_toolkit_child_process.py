"""The toolkit's child processes: started on a free port until ready, retried only when the port
was taken meanwhile, reported in the program's own words with this machine's paths masked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lessons.toolkit.child_process import accepts_connections, start_on_free_port, stop

SERVE = (
    "import socket, sys, time\n"
    "server = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "time.sleep(30)\n"
)


def test_a_program_that_listens_is_returned_ready_and_stopped(tmp_path: Path) -> None:
    process, port = start_on_free_port(
        "listener",
        lambda port: [sys.executable, "-c", SERVE, str(port)],
        ready=accepts_connections,
        log=tmp_path / "log",
        workdir=tmp_path,
        startup_timeout=10,
    )
    try:
        assert accepts_connections(port)
    finally:
        stop(process)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode is not None


def test_a_program_that_fails_is_reported_once_with_its_words_and_paths_masked(
    tmp_path: Path,
) -> None:
    starts: list[int] = []

    def command_for(port: int) -> list[str]:
        starts.append(port)
        message = f"cannot read {tmp_path}/conf"
        return [sys.executable, "-c", f"import sys; sys.exit({message!r})"]

    with pytest.raises(RuntimeError, match=r"broken did not start: cannot read <tmp>/conf"):
        start_on_free_port(
            "broken", command_for, ready=accepts_connections, log=tmp_path / "log",
            workdir=tmp_path, startup_timeout=5,
        )  # fmt: skip
    assert len(starts) == 1, "a failure other than a taken port is not retried"


def test_a_taken_port_is_retried_on_another(tmp_path: Path) -> None:
    starts: list[int] = []

    def command_for(port: int) -> list[str]:
        starts.append(port)
        return [sys.executable, "-c", "import sys; sys.exit('bind: Address already in use')"]

    with pytest.raises(RuntimeError, match="Address already in use"):
        start_on_free_port(
            "unlucky", command_for, ready=accepts_connections, log=tmp_path / "log",
            workdir=tmp_path, startup_timeout=5, attempts=3,
        )  # fmt: skip
    assert len(starts) == 3
