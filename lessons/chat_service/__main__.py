"""Run the service with the draining server: `python -m lessons.chat_service --workers 2`.

The draining server (the core's `DrainingServer`, in every worker) ends
every open stream with a terminal `server_shutting_down` event on SIGTERM before it stops; the
plain `uvicorn` command and gunicorn's uvicorn worker do not (their streams are cut at the
graceful timeout). Logs are one JSON object per line on stderr, each with the request id it
belongs to.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from lessons.relay_core import serve
from lessons.relay_core.logs import JsonFormatter


def log_config(level: str) -> dict[str, Any]:
    """JSON lines for the service's own log; uvicorn's startup and error lines stay plain."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "plain": {"format": "%(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json"},
            "plain": {"class": "logging.StreamHandler", "formatter": "plain"},
        },
        "loggers": {
            "lessons": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["plain"], "level": "INFO", "propagate": False},
            # Every request is in the service's own log already (stream_end, usage...).
            "uvicorn.access": {"handlers": ["plain"], "level": "WARNING", "propagate": False},
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lessons.chat_service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CHAT_SERVICE_REDIS_URL"),
        help="keep generations and budgets in Redis (needed for more than one worker)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus metrics: worker i serves them on this port + i",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.workers > 1 and not args.redis_url:
        parser.error("more than one worker needs --redis-url: a reconnect may reach any worker")
    # The workers read their settings from the environment (they are started afresh).
    if args.redis_url:
        os.environ["CHAT_SERVICE_REDIS_URL"] = args.redis_url
    if args.metrics_port is not None:
        os.environ["CHAT_SERVICE_METRICS_PORT"] = str(args.metrics_port)
        os.environ["CHAT_SERVICE_METRICS_PORTS"] = str(args.workers)
    logging.getLogger("lessons").setLevel(args.log_level)
    target = "lessons.chat_service.app:app"
    options = {"host": args.host, "port": args.port, "log_config": log_config(args.log_level)}
    serve(target, workers=args.workers, **options)


if __name__ == "__main__":
    main()
