"""Wrong: on a mid-stream provider error the relay just stops, sending no terminal event.

The client cannot tell "the model finished" from "the model failed": the stream simply ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import sse_data
from lessons.testing_streams.chat_app import create_app

logger = logging.getLogger("lessons.relay")


async def relay_until_error(
    stream: AsyncIterator[ChatCompletionChunk], request_id: str
) -> AsyncIterator[str]:
    try:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
        yield sse_data({"token": "", "done": True})
    except Exception:
        # The bug: logged on the server, invisible to the client.
        logger.exception("stream %s failed", request_id)
    finally:
        await stream.close()  # type: ignore[attr-defined]


app = create_app(relay_until_error)
