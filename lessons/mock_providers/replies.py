"""Deterministic replies: canned answers for the lessons' prompts, a readable one for any other."""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from lessons.mock_providers.conversation import Conversation, ToolSpec
from lessons.mock_providers.tokens import split_json_fragments, split_pieces

# Keys are normalised prompts (see `_normalise`).
CANNED_REPLIES: dict[str, str] = {
    "what is machine learning?": (
        "Machine learning is a branch of artificial intelligence in which computers learn "
        "patterns from data instead of following hand-written rules. A model is trained on "
        "examples, measured on how well it predicts, and adjusted until its predictions improve. "
        "It powers spam filters, recommendations, speech recognition and language models like me."
    ),
    "explain streaming in one paragraph.": (
        "Streaming sends a response in small pieces as soon as each one is ready, instead of "
        "waiting for the whole answer. A language model produces text one token at a time, so a "
        "server can forward every token to the browser the moment it arrives, usually as "
        "Server-Sent Events over a single HTTP response. The total time stays the same, but the "
        "first words appear in a fraction of a second, which makes the answer feel fast."
    ),
    "say hello.": "Hello! How can I help you today?",
}

# The generated reply ends with one of these, chosen by a hash of the prompt, so that different
# prompts visibly get different replies while the same prompt always gets the same one.
_CLOSINGS = (
    "Point the SDK at a real provider to get a real answer.",
    "Ask one of the lessons' prompts to get a canned answer instead.",
    "The same prompt always streams exactly these pieces.",
    "The usage figures count exactly the pieces you receive.",
)

_TOPIC_WORDS = 12
PERTURB_MARKER = "PERTURBED"


@dataclass(frozen=True)
class ToolCall:
    """A tool call the reply makes: the tool's name and its JSON arguments, cut into fragments."""

    name: str
    arguments: str
    fragments: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    """What the model "says", already cut into the token pieces that will be streamed."""

    thinking: tuple[str, ...]
    text: tuple[str, ...]
    tool_call: ToolCall | None
    # True when max_tokens cut the reply short.
    truncated: bool

    @property
    def output_tokens(self) -> int:
        tool_tokens = len(self.tool_call.fragments) if self.tool_call else 0
        return len(self.thinking) + len(self.text) + tool_tokens

    @property
    def full_text(self) -> str:
        return "".join(self.text)


def compose_reply(
    conversation: Conversation, text: str | tuple[str, ...] | None, perturb: bool
) -> Reply:
    """The reply to a conversation; `text` (a scripted reply) replaces the chosen text, and a
    tuple of pieces is streamed exactly as those pieces."""
    tool = _tool_to_call(conversation)
    tool_call = None
    if isinstance(text, tuple):
        return _truncate((), list(text), None, conversation.max_tokens)
    if text is None:
        text = _reply_text(conversation, tool)
    if tool is not None:
        arguments = json.dumps(_arguments(tool.parameters, conversation.prompt))
        tool_call = ToolCall(tool.name, arguments, tuple(split_json_fragments(arguments)))
    if perturb:
        text = perturbed(text)
    thinking = _thinking_text(conversation) if conversation.thinking else ""
    return _truncate(split_pieces(thinking), split_pieces(text), tool_call, conversation.max_tokens)


def perturbed(text: str) -> str:
    """The text with its last word replaced: proves that output checks notice a changed reply."""
    words = list(re.finditer(r"[^\W\d_]+", text))
    if not words:
        return text
    last = words[-1]
    return text[: last.start()] + PERTURB_MARKER + text[last.end() :]


def _normalise(prompt: str) -> str:
    return " ".join(prompt.split()).lower()


def _reply_text(conversation: Conversation, tool: ToolSpec | None) -> str:
    if tool is not None:
        # OpenAI models call tools without prose; Claude usually says what it is about to do.
        if conversation.provider == "anthropic":
            return f"I'll use the {tool.name} tool to answer that."
        return ""
    if conversation.tool_result is not None:
        return f"The tool returned: {conversation.tool_result.strip()}"
    canned = CANNED_REPLIES.get(_normalise(conversation.prompt))
    if canned is not None:
        return canned
    return generated_reply(conversation.prompt)


def generated_reply(prompt: str) -> str:
    """A readable, deterministic reply for a prompt that has no canned answer."""
    words = prompt.split()
    topic = " ".join(words[:_TOPIC_WORDS]).rstrip(".?!,;: ")
    if len(words) > _TOPIC_WORDS:
        topic += " ..."
    opening = f'You asked: "{topic}".' if topic else "You sent an empty prompt."
    digest = hashlib.sha256(prompt.encode()).digest()
    closing = _CLOSINGS[digest[0] % len(_CLOSINGS)]
    return (
        f"{opening} This reply comes from the mock provider: it is made up, but it streams "
        f"like a real one, in small pieces with leading spaces and punctuation apart. {closing}"
    )


def _thinking_text(conversation: Conversation) -> str:
    topic = " ".join(conversation.prompt.split()[:_TOPIC_WORDS])
    return (
        f'The user asks: "{topic}". I should answer clearly and briefly, '
        "then check that the answer is complete."
    )


def _tool_to_call(conversation: Conversation) -> ToolSpec | None:
    # A conversation that ends with a tool result gets a prose answer, as with a real model.
    if not conversation.tools or conversation.tool_result is not None:
        return None
    if conversation.tool_choice == "none":
        return None
    for tool in conversation.tools:
        if tool.name == conversation.tool_choice:
            return tool
    return conversation.tools[0]


def _arguments(schema: dict[str, Any], prompt: str) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    names = required if isinstance(required, list) and required else list(properties)
    return {
        name: _value(properties.get(name, {}), prompt) for name in names if isinstance(name, str)
    }


def _value(schema: Any, prompt: str) -> Any:
    if not isinstance(schema, dict):
        return _prompt_word(prompt)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return _arguments(schema, prompt)
    return _prompt_word(prompt)


def _prompt_word(prompt: str) -> str:
    """The word of the prompt a tool argument most likely wants: a name, else a long word."""
    words = re.findall(r"[^\W\d_]+", prompt)
    names = [word for word in words[1:] if word[0].isupper()]
    if names:
        return names[-1]
    long_words = [word for word in words if len(word) >= 4]
    return long_words[-1] if long_words else "example"


def _truncate(
    thinking: list[str], text: list[str], tool_call: ToolCall | None, max_tokens: int | None
) -> Reply:
    # Thinking, then text, then the tool's arguments: the order the tokens are generated in.
    if max_tokens is None:
        return Reply(tuple(thinking), tuple(text), tool_call, truncated=False)
    budget = max_tokens
    kept_thinking = thinking[:budget]
    budget -= len(kept_thinking)
    kept_text = text[:budget]
    budget -= len(kept_text)
    truncated = len(kept_thinking) < len(thinking) or len(kept_text) < len(text)
    if tool_call is not None:
        if budget <= 0:
            truncated = True
            tool_call = None
        elif budget < len(tool_call.fragments):
            truncated = True
            fragments = tool_call.fragments[:budget]
            tool_call = ToolCall(tool_call.name, "".join(fragments), fragments)
    return Reply(tuple(kept_thinking), tuple(kept_text), tool_call, truncated)
