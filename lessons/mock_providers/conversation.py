"""The provider-neutral view of a request that the mock answers, and the 400 for bad ones."""

from dataclasses import dataclass
from typing import Any


class BadRequest(Exception):
    """A request the real API would refuse with 400; the dialect renders it in its own shape."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class ToolSpec:
    """A tool the request offers: its name and the JSON schema of its arguments."""

    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Conversation:
    """What a request asks for, in terms every dialect shares."""

    provider: str
    model: str
    stream: bool
    # Every message's text (system included), for input token counts and rule matching.
    message_texts: list[str]
    # The last user message's text: the prompt that chooses the reply.
    prompt: str
    max_tokens: int | None = None
    include_usage: bool = False
    tools: tuple[ToolSpec, ...] = ()
    # "auto" (the model may call a tool), "none", "required", or the name of a forced tool.
    tool_choice: str = "auto"
    # The text of a tool result that ends the conversation: the model then answers in prose.
    tool_result: str | None = None
    thinking: bool = False
    # Every tool result at the end of the conversation (several after parallel calls).
    tool_results: tuple[str, ...] = ()
    # False when the request forbids several tool calls in one reply.
    parallel_tool_calls: bool = True

    @property
    def all_text(self) -> str:
        return "\n".join(self.message_texts)


def content_text(content: Any) -> str:
    """The plain text of a message `content` in any of the three APIs' shapes."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    if isinstance(content, dict):
        return _part_text(content)
    return str(content)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    for key in ("text", "thinking", "output"):
        value = part.get(key)
        if isinstance(value, str):
            return value
    # Anthropic tool results nest their own content list.
    if "content" in part:
        return content_text(part["content"])
    return ""
