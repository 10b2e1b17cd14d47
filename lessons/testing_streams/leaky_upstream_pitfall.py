"""Wrong: a producer task reads the provider stream and is never cancelled, so it leaks.

When the client disconnects, the relay's generator is cancelled but the task it started keeps
reading (and paying for) the provider's tokens until the reply is complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import sse_data
from lessons.testing_streams.chat_app import create_app

_END = object()
# Kept so the task is not garbage collected mid-stream; never cancelled, which is the bug.
_producers: set[asyncio.Task[None]] = set()


async def relay_through_queue(
    stream: AsyncIterator[ChatCompletionChunk], request_id: str
) -> AsyncIterator[str]:
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def produce() -> None:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                await queue.put(chunk.choices[0].delta.content)
        await queue.put(_END)

    # The bug: nothing cancels this task when the generator below is cancelled.
    task = asyncio.get_running_loop().create_task(produce())
    _producers.add(task)
    task.add_done_callback(_producers.discard)
    while (token := await queue.get()) is not _END:
        yield sse_data({"token": token, "done": False})
    yield sse_data({"token": "", "done": True})


app = create_app(relay_through_queue)
