"""Run the hardened relay with the draining server: `python -m lessons.resilient_relay`."""

from __future__ import annotations

import argparse

import uvicorn

from lessons.resilient_relay.drain import DrainingServer
from lessons.resilient_relay.relay import app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lessons.resilient_relay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    config = uvicorn.Config(app, host=args.host, port=args.port, timeout_graceful_shutdown=10)
    DrainingServer(config).run()


if __name__ == "__main__":
    main()
