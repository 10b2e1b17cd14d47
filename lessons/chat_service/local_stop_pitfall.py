"""Wrong: stops a generation only on the worker that produces it; elsewhere the stop does nothing.

A first version of the stop route, as many write it when the producer is a task of their own
process: find the producer among this worker's streams and stop it. Behind a load balancer the
DELETE reaches any worker; when it is not the one generating, it finds nothing, answers 204
all the same, and the provider goes on generating (and billing) for nobody. The route in
routes.py writes the request to the store instead, where the producer looks, wherever it runs.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lessons.relay_core import ReaderContext
from lessons.relay_core.generations import Producer

router = APIRouter()


@router.delete("/pitfall/generations/{generation_id}", status_code=204)
async def stop_here_only(generation_id: str, request: Request, reader: ReaderContext) -> Response:
    """Stop the generation if this worker is producing it."""
    streams = request.app.state.streams
    for stream in list(streams._open):  # this process's streams: the only ones it can see
        found = isinstance(stream, Producer) and stream.meta.id == generation_id
        if found and stream.meta.owner == reader.client_id:
            stream.stop()
    return Response(status_code=204)
