"""Shutdown that ends every stream in flight with a terminal event before uvicorn stops.

What uvicorn 0.54 does on its own when asked to stop (SIGTERM, or `should_exit`): it stops
accepting, lets in-flight responses run, and waits for them, for ever unless
`timeout_graceful_shutdown` is set, in which case it then cancels them mid-stream. Only after
that does the app's lifespan hear about the shutdown, too late to tell a stream anything. So the
client of a long stream either holds up the deploy or sees its stream cut with no terminal event.

`DrainingServer` overrides the server's public `shutdown()` method: it first asks each open stream
to end (each sends its terminal `server_shutting_down` event and closes its upstream), then runs
uvicorn's own shutdown. Run it with `python -m lessons.resilient_relay`.
"""

from __future__ import annotations

import socket

import uvicorn

from lessons.resilient_relay.lifecycle import StreamRegistry


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains the relay's streams before its normal graceful shutdown."""

    def __init__(self, config: uvicorn.Config, *, drain_timeout_s: float = 5.0) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self.drained = 0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        registry = _registry_of(self.config.app)
        if registry is not None:
            self.drained = await registry.drain(self.drain_timeout_s)
        await super().shutdown(sockets)


def _registry_of(app: object) -> StreamRegistry | None:
    state = getattr(app, "state", None)
    registry = getattr(state, "streams", None)
    return registry if isinstance(registry, StreamRegistry) else None
