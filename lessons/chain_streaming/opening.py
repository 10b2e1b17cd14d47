"""Open a lazy LangChain stream before the response starts, so provider errors become statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class OpenedStream(Generic[T]):
    """An async generator with the items already pulled from it put back in front."""

    def __init__(self, head: list[T], rest: AsyncIterator[T]) -> None:
        self._head = head
        self._rest = rest

    def __aiter__(self) -> OpenedStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._head:
            return self._head.pop(0)
        return await anext(self._rest)

    async def aclose(self) -> None:
        """Close the underlying generator: LangChain then closes the provider's HTTP stream."""
        self._head.clear()
        aclose = getattr(self._rest, "aclose", None)
        if aclose is not None:
            await aclose()


def _any_item(_: object) -> bool:
    return True


async def open_stream(
    stream: AsyncIterator[T], opened: Callable[[T], bool] = _any_item
) -> OpenedStream[T]:
    """Pull items until one satisfies `opened` (or the stream ends), and keep them.

    `llm.astream()` and `chain.astream_events()` make no HTTP request until they are iterated,
    so a route that returned its StreamingResponse first would learn of a 429 only after
    committing to a 200. Pulling the first model chunk here runs the SDK call that opens the
    provider's stream; its exceptions propagate (after the generator is closed) for the route to
    map onto an HTTP status.
    """
    stream = aiter(stream)
    head: list[T] = []
    try:
        async for item in stream:
            head.append(item)
            if opened(item):
                break
    except BaseException:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return OpenedStream(head, stream)
