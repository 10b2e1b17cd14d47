"""Run the protected relay with the draining server: `python -m lessons.resilient_relay`."""

from __future__ import annotations

import argparse

from lessons.relay_core import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lessons.resilient_relay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(
        "lessons.resilient_relay.protected:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
    )


if __name__ == "__main__":
    main()
