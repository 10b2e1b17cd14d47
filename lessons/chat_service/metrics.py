"""OpenTelemetry's GenAI client metrics for streaming, exported for Prometheus by every worker.

The service is a client of the model providers, so it records the GenAI semantic conventions'
client metrics (status: development; the names may still change):

- `gen_ai.client.operation.time_to_first_chunk` (s): from the request's arrival to the first
  piece of text;
- `gen_ai.client.operation.time_per_output_chunk` (s): for each piece after the first, the time
  since the one before;
- `gen_ai.client.operation.duration` (s): the whole generation, with `error.type` when it did
  not end with the provider's end marker;
- `gen_ai.client.token.usage` ({token}): input and output tokens (`gen_ai.token.type`);

with `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `server.address`
and `server.port`, plus `relay.streams.open`, this worker's open streams (readers and
generations). Prometheus sees them as `gen_ai_client_operation_time_to_first_chunk_seconds` and
so on.

Every worker exposes its own metrics on its own port (`ServiceSettings.metrics_port`), never on
the public one: behind a load balancer a scrape of the public port would reach one worker at
random. Prometheus scrapes each worker as its own target.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from lessons.relay_core import Finish, Token, Usage
from lessons.relay_core.stream import Items

TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
OPEN_STREAMS = "relay.streams.open"

# Bucket boundaries the GenAI conventions recommend for each histogram.
FIRST_CHUNK_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
PER_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


class ServiceMetrics:
    """One worker's meters, in a registry of its own, served on a port of its own."""

    def __init__(self, worker: str, open_streams: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self._reader = PrometheusMetricReader(registry=self.registry)
        self._provider = MeterProvider(
            resource=Resource.create(
                {"service.name": "chat-service", "service.instance.id": worker}
            ),
            metric_readers=[self._reader],
        )
        meter = self._provider.get_meter("lessons.chat_service")
        self.time_to_first_chunk = meter.create_histogram(
            TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the request to the first chunk of the reply.",
            explicit_bucket_boundaries_advisory=FIRST_CHUNK_BUCKETS,
        )
        self.time_per_output_chunk = meter.create_histogram(
            TIME_PER_OUTPUT_CHUNK,
            unit="s",
            description="Time between two chunks of the reply, for each chunk after the first.",
            explicit_bucket_boundaries_advisory=PER_CHUNK_BUCKETS,
        )
        self.duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="Duration of the whole generation.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._open_streams = open_streams
        meter.create_observable_gauge(
            OPEN_STREAMS,
            callbacks=[self._observe_open_streams],
            unit="{stream}",
            description="Streams open in this worker: readers, and generations it produces.",
        )
        self.generations = 0  # generations this worker is producing now
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def _observe_open_streams(self, _options: Any) -> Any:
        return [Observation(n, {"kind": kind}) for kind, n in self._open_streams().items()]

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics (any path, in fact) on `host:port` in a thread; returns the port."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        self.port = int(self._server.server_address[1])
        return self.port

    def render(self) -> bytes:
        """The Prometheus text exposition, as a scrape would get it."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._provider.shutdown()

    def metered(
        self,
        events: Callable[[Any], Items],
        *,
        provider: str,
        model: str,
        base_url: str,
        started: float,
    ) -> Callable[[Any], Items]:
        """`events` (an adapter), recording the GenAI metrics of the stream it adapts.

        `started` is the request's arrival (`time.monotonic()`): time to first chunk is what
        the user waited, provider call included.
        """
        location = urlsplit(base_url)
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "server.address": location.hostname or "",
        }
        if location.port is not None:
            attributes["server.port"] = location.port
        metrics = self

        async def metered_events(upstream: Any) -> AsyncIterator[Any]:
            previous: float | None = None
            usage: Usage | None = None
            finished = False
            error_type: str | None = None
            metrics.generations += 1
            try:
                async for item in events(upstream):
                    if type(item) is Token:
                        now = time.monotonic()
                        if previous is None:
                            metrics.time_to_first_chunk.record(now - started, attributes)
                        else:
                            metrics.time_per_output_chunk.record(now - previous, attributes)
                        previous = now
                    elif type(item) is Usage:
                        usage = item
                    elif type(item) is Finish:
                        finished = True
                    yield item
            except GeneratorExit:
                # The relay closed the stream early: stopped, abandoned, a deadline, shutdown.
                error_type = "cancelled"
                raise
            except BaseException as exc:
                error_type = (
                    "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__
                )
                raise
            finally:
                metrics.generations -= 1
                ended = dict(attributes)
                if error_type is None and not finished:
                    error_type = "stream_interrupted"  # ended without the end marker
                if error_type is not None:
                    ended["error.type"] = error_type
                metrics.duration.record(time.monotonic() - started, ended)
                if usage is not None:
                    for kind, count in (
                        ("input", usage.input_tokens),
                        ("output", usage.output_tokens),
                    ):
                        metrics.token_usage.record(count, {**attributes, "gen_ai.token.type": kind})

        return metered_events
