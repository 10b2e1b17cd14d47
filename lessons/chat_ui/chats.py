"""Each chat's messages, kept on the server, so that a reloaded page shows the whole conversation.

`useChat({resume: true})` reconnects with `GET /api/chat/{id}/stream`, by chat id, and that
stream replays the chat's latest reply from its start. What came before it must come from
somewhere too: the page asks `GET /api/chat/{id}` for the chat's messages first. So the server
keeps, per chat, the messages the client sent with its last turn (up to its user message), the
id of the generation producing the reply, and, once that reply is complete, the reply itself,
built from its chunks (`assemble.py`) by an archiver task.

One rule keeps the two GETs from ever showing the reply twice or not at all: while the reply's
generation can be replayed (it runs, or it ended less than the generation store's retention ago)
the messages stop before it and the stream replays it; after that, the messages include it and
the stream answers 204.

Chats are bounded (how many, how many messages each) and expire when unused; each belongs to
the client that started it. `MemoryChatStore` keeps them in this process; with several workers,
keep them where every worker reads them (notebook 07's Redis), like the generations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from lessons.chat_ui.assemble import MessageAssembler, chunks_of
from lessons.relay_core.generations import GenerationStore


@dataclass
class Chat:
    id: str
    owner: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    generation_id: str | None = None
    reply: dict[str, Any] | None = None  # the latest reply, once complete (or ended)
    used_at: float = field(default_factory=time.monotonic)


class MemoryChatStore:
    """Chats in this process's memory: the oldest unused chat goes first when full."""

    def __init__(
        self, *, max_chats: int = 1_000, max_messages: int = 200, ttl_s: float = 3_600.0
    ) -> None:
        self.max_chats = max_chats
        self.max_messages = max_messages
        self.ttl_s = ttl_s
        self._chats: dict[str, Chat] = {}

    def __len__(self) -> int:
        return len(self._chats)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, chat in list(self._chats.items()):
            if now - chat.used_at > self.ttl_s:
                del self._chats[key]

    def get(self, chat_id: str, owner: str) -> Chat | None:
        """The chat, if it exists and belongs to `owner` (another's answers as a missing one)."""
        self._expire()
        chat = self._chats.get(chat_id)
        if chat is None or chat.owner != owner:
            return None
        chat.used_at = time.monotonic()
        return chat

    def taken(self, chat_id: str, owner: str) -> bool:
        """True when another client's chat has this id."""
        chat = self._chats.get(chat_id)
        return chat is not None and chat.owner != owner

    def begin_turn(
        self, chat_id: str, owner: str, messages: list[dict[str, Any]], generation_id: str
    ) -> str | None:
        """Record a new turn; returns the generation of the turn it replaces, if any."""
        self._expire()
        chat = self._chats.get(chat_id)
        if chat is None:
            while len(self._chats) >= self.max_chats:
                oldest = min(self._chats.values(), key=lambda c: c.used_at)
                del self._chats[oldest.id]
            chat = self._chats[chat_id] = Chat(chat_id, owner)
        previous = chat.generation_id
        chat.messages = messages[-self.max_messages :]
        chat.generation_id, chat.reply = generation_id, None
        chat.used_at = time.monotonic()
        return previous

    def archive(self, chat_id: str, generation_id: str, reply: dict[str, Any]) -> None:
        chat = self._chats.get(chat_id)
        # Only the reply of the chat's current turn (a newer turn may have replaced it).
        if chat is not None and chat.generation_id == generation_id:
            chat.reply = reply


async def archive_reply(
    generations: GenerationStore, chats: MemoryChatStore, chat_id: str, generation_id: str
) -> None:
    """Follow a generation to its end and keep the reply it built in the chat.

    It reads the store directly, not as a reader: a reader would keep the generation from being
    abandoned when the page is gone.
    """
    assembler = MessageAssembler()
    position: str | None = None
    while True:
        page = await generations.read(generation_id, position, wait_s=5.0)
        for entry_id, frame in page.entries:
            for chunk in chunks_of([frame]):
                assembler.feed(chunk)
            position = entry_id
        if (page.finished and not page.entries) or not page.producer_alive:
            break
        await anyio.lowlevel.checkpoint()
    chats.archive(chat_id, generation_id, assembler.message)


async def history(
    generations: GenerationStore, chats: MemoryChatStore, chat_id: str, owner: str
) -> list[dict[str, Any]]:
    """The messages a reloaded page starts from (see the module's docstring for the rule)."""
    chat = chats.get(chat_id, owner)
    if chat is None:
        return []
    replayable = chat.generation_id is not None and await generations.get(chat.generation_id)
    if chat.reply is None or replayable:
        return list(chat.messages)
    return [*chat.messages, chat.reply]
