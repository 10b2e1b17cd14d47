"""Deterministic replies: canned answers for the lessons' prompts, a readable one for any other."""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from lessons.mock_providers.conversation import Conversation, ToolSpec
from lessons.mock_providers.tokens import split_json_fragments, split_pieces


def _normalise(prompt: str) -> str:
    return " ".join(prompt.split()).lower()


_MACHINE_LEARNING = (
    "Machine learning is a branch of artificial intelligence in which computers learn "
    "patterns from data instead of following hand-written rules. A model is trained on "
    "examples, measured on how well it predicts, and adjusted until its predictions improve. "
    "It powers spam filters, recommendations, speech recognition and language models like me."
)
_HELLO = "Hello! How can I help you today?"


def _rewrite_prompt(question: str, draft: str) -> str:
    """The prompt of notebook 03's two-step chain when it asks for a rewrite of its own draft
    (`build_two_step_chain` in lessons/chain_streaming/chains.py)."""
    return _normalise(f"Question: {question}\nDraft answer: {draft}")


# Keys are normalised prompts (see `_normalise`).
CANNED_REPLIES: dict[str, str] = {
    "what is machine learning?": _MACHINE_LEARNING,
    "explain streaming in one paragraph.": (
        "Streaming sends a response in small pieces as soon as each one is ready, instead of "
        "waiting for the whole answer. A language model produces text one token at a time, so a "
        "server can forward every token to the browser the moment it arrives, usually as "
        "Server-Sent Events over a single HTTP response. The total time stays the same, but the "
        "first words appear in a fraction of a second, which makes the answer feel fast."
    ),
    "say hello.": _HELLO,
    # Notebook 03's rewrites read like the short answers they were asked to be, not an echo.
    _rewrite_prompt("What is machine learning?", _MACHINE_LEARNING): (
        "Machine learning lets computers learn patterns from examples instead of following "
        "hand-written rules, and improve as they are trained on more data."
    ),
    _rewrite_prompt("Say hello.", _HELLO): "Hello! How can I help?",
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
    # Calls after the first, when the reply calls several tools at once (parallel calls).
    more_tool_calls: tuple[ToolCall, ...] = ()

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Every tool call of the reply, in order: none, one, or several in parallel."""
        return () if self.tool_call is None else (self.tool_call, *self.more_tool_calls)

    @property
    def output_tokens(self) -> int:
        tool_tokens = sum(len(call.fragments) for call in self.tool_calls)
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
    tool_calls: list[ToolCall] = []
    if isinstance(text, tuple):
        return _truncate((), list(text), [], conversation.max_tokens)
    if text is None:
        text = _reply_text(conversation, tool)
    if tool is not None:
        for values in _call_arguments(tool, conversation):
            arguments = json.dumps(values)
            tool_calls.append(
                ToolCall(tool.name, arguments, tuple(split_json_fragments(arguments)))
            )
    if perturb:
        text = perturbed(text)
    thinking = _thinking_text(conversation) if conversation.thinking else ""
    return _truncate(
        split_pieces(thinking), split_pieces(text), tool_calls, conversation.max_tokens
    )


def perturbed(text: str) -> str:
    """The text with its last word replaced: proves that output checks notice a changed reply."""
    words = list(re.finditer(r"[^\W\d_]+", text))
    if not words:
        return text
    last = words[-1]
    return text[: last.start()] + PERTURB_MARKER + text[last.end() :]


def _reply_text(conversation: Conversation, tool: ToolSpec | None) -> str:
    if tool is not None:
        # OpenAI models call tools without prose; Claude usually says what it is about to do.
        if conversation.provider == "anthropic":
            return f"I'll use the {tool.name} tool to answer that."
        return ""
    if len(conversation.tool_results) > 1:
        # After parallel calls: every result, in the order the calls were made.
        return "The tools returned: " + "; ".join(r.strip() for r in conversation.tool_results)
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
    # Of several tools, the first one the prompt names ("convert" for convert_units), else the
    # first one offered.
    mentioned = [tool for tool in conversation.tools if _names_tool(conversation.prompt, tool)]
    return mentioned[0] if mentioned else conversation.tools[0]


def _names_tool(prompt: str, tool: ToolSpec) -> bool:
    words = {word.lower() for word in re.findall(r"[^\W\d_]+", prompt)}
    return any(len(part) >= 3 and part.lower() in words for part in re.split(r"[_\W]+", tool.name))


# Parallel calls: at most this many calls of one tool in one reply.
_MAX_PARALLEL_CALLS = 4
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")


class _Filler:
    """Fills one call's arguments from the prompt, as a model would read it.

    Strings get the prompt's last capitalised word (or `name`, for one of several parallel
    calls); numbers the prompt's numbers, in order (1 when it has none left); an enum the values
    the prompt mentions, in order of mention (its first value when it mentions none).
    """

    def __init__(self, prompt: str, name: str | None = None) -> None:
        self.prompt = prompt
        self.name = name
        self.numbers = [float(m.group()) for m in _NUMBER.finditer(prompt)]
        self.used_mentions: set[tuple[int, str]] = set()

    def arguments(self, schema: dict[str, Any]) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        names = required if isinstance(required, list) and required else list(properties)
        return {
            name: self.value(properties.get(name, {})) for name in names if isinstance(name, str)
        }

    def value(self, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return self.word()
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.enum_value(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind in ("integer", "number"):
            if not self.numbers:
                return 1
            number = self.numbers.pop(0)
            return int(number) if kind == "integer" or number.is_integer() else number
        if kind == "boolean":
            return True
        if kind == "array":
            return []
        if kind == "object":
            return self.arguments(schema)
        return self.word()

    def word(self) -> str:
        return self.name if self.name is not None else _prompt_word(self.prompt)

    def enum_value(self, values: list[Any]) -> Any:
        mentions = sorted(
            (match.start(), value)
            for value in values
            if isinstance(value, str)
            for match in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", self.prompt, re.I)
        )
        for mention in mentions:
            if mention not in self.used_mentions:
                self.used_mentions.add(mention)
                return mention[1]
        return values[0]


def _arguments(schema: dict[str, Any], prompt: str) -> dict[str, Any]:
    return _Filler(prompt).arguments(schema)


def _call_arguments(tool: ToolSpec, conversation: Conversation) -> list[dict[str, Any]]:
    """One call's arguments, or several calls' when the prompt asks about several names at once
    ("Paris and Tokyo"), the tool takes a string, and the request allows parallel calls."""
    names = _prompt_names(conversation.prompt)
    properties = tool.parameters.get("properties")
    takes_a_string = isinstance(properties, dict) and any(
        isinstance(p, dict) and p.get("type") == "string" and "enum" not in p
        for p in properties.values()
    )
    if conversation.parallel_tool_calls and takes_a_string and len(names) > 1:
        return [
            _Filler(conversation.prompt, name).arguments(tool.parameters)
            for name in names[:_MAX_PARALLEL_CALLS]
        ]
    return [_arguments(tool.parameters, conversation.prompt)]


def _prompt_names(prompt: str) -> list[str]:
    """The distinct capitalised words after the first, in order: the names a prompt asks about."""
    words = re.findall(r"[^\W\d_]+", prompt)
    # One letter ("I") is not a name.
    return list(dict.fromkeys(w for w in words[1:] if w[0].isupper() and len(w) > 1))


def _prompt_word(prompt: str) -> str:
    """The word of the prompt a tool argument most likely wants: a name, else a long word."""
    words = re.findall(r"[^\W\d_]+", prompt)
    names = [word for word in words[1:] if word[0].isupper()]
    if names:
        return names[-1]
    long_words = [word for word in words if len(word) >= 4]
    return long_words[-1] if long_words else "example"


def _truncate(
    thinking: list[str], text: list[str], tool_calls: list[ToolCall], max_tokens: int | None
) -> Reply:
    # Thinking, then text, then the tools' arguments: the order the tokens are generated in.
    if max_tokens is None:
        return _reply(thinking, text, tool_calls, truncated=False)
    budget = max_tokens
    kept_thinking = thinking[:budget]
    budget -= len(kept_thinking)
    kept_text = text[:budget]
    budget -= len(kept_text)
    truncated = len(kept_thinking) < len(thinking) or len(kept_text) < len(text)
    kept_calls: list[ToolCall] = []
    for tool_call in tool_calls:
        if budget <= 0:
            truncated = True
            break
        if budget < len(tool_call.fragments):
            truncated = True
            fragments = tool_call.fragments[:budget]
            kept_calls.append(ToolCall(tool_call.name, "".join(fragments), fragments))
            break
        kept_calls.append(tool_call)
        budget -= len(tool_call.fragments)
    return _reply(kept_thinking, kept_text, kept_calls, truncated)


def _reply(
    thinking: list[str], text: list[str], tool_calls: list[ToolCall], truncated: bool
) -> Reply:
    first = tool_calls[0] if tool_calls else None
    return Reply(tuple(thinking), tuple(text), first, truncated, tuple(tool_calls[1:]))
