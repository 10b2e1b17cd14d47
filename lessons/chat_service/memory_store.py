"""The in-process store, with the Redis store's append: one behaviour, whichever store runs.

The core's `MemoryGenerationStore` keeps generations in this process (one worker). As in
`redis_store.py`, each append here is also the producer's heartbeat (its lease is renewed:
writing proves it is alive) and its check for a stop request or abandonment, so that a stop
takes effect at the next event, however fast tokens flow, rather than at the producer's next
periodic check.
"""

from __future__ import annotations

from collections.abc import Sequence

from lessons.relay_core.errors import ErrorCode, StreamFailed
from lessons.relay_core.generations import MemoryGenerationStore


class ServiceMemoryStore(MemoryGenerationStore):
    """`MemoryGenerationStore` whose appends renew the lease and carry stop and abandonment."""

    def __init__(
        self,
        *,
        max_generations: int = 1_000,
        retain_s: float = 300.0,
        abandon_after_s: float = 30.0,
    ) -> None:
        super().__init__(max_generations=max_generations, retain_s=retain_s)
        self.abandon_after_s = abandon_after_s
        self._leases: dict[str, tuple[str, float]] = {}  # generation -> (producer, lease_s)
        self._ending: set[str] = set()

    async def claim(self, generation_id: str, producer: str, lease_s: float) -> bool:
        claimed = await super().claim(generation_id, producer, lease_s)
        if claimed:
            self._leases[generation_id] = (producer, lease_s)
        return claimed

    async def append(self, generation_id: str, frames: Sequence[bytes]) -> None:
        await super().append(generation_id, frames)
        lease = self._leases.get(generation_id)
        if lease is not None:
            await self.renew(generation_id, *lease)
        if generation_id in self._ending or ends_generation(frames):
            return
        stop = await self.stop_requested(generation_id)
        if stop or await self.unread_for(generation_id) > self.abandon_after_s:
            self._ending.add(generation_id)
            reason = "a stop was requested" if stop else "nobody read it any more"
            raise StreamFailed(ErrorCode.STOPPED, f"generation ended: {reason}")

    async def finish(self, generation_id: str) -> None:
        self._leases.pop(generation_id, None)
        self._ending.discard(generation_id)
        await super().finish(generation_id)


def ends_generation(frames: Sequence[bytes]) -> bool:
    """True when these frames hold a generation's terminal event (`done` or `error`)."""
    return any(frame.startswith((b"event: done", b"event: error")) for frame in frames)
